"""``TrainConfig``: how every individual of a population is trained and evaluated."""

from __future__ import annotations

import dataclasses
from typing import Any

import optax

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")
PLANS = ("auto", "masked", "grouped")


def _check_int(name: str, value: Any, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"TrainConfig.{name} must be an int >= {low}; got {value!r}")


def _check_float(name: str, value: Any, low: float, high: float, open_low: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (low < value if open_low else low <= value) and value < high
    if not ok:
        bracket = "(" if open_low else "["
        raise ValueError(f"TrainConfig.{name} must be a number in {bracket}{low}, {high}); "
                         f"got {value!r}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"TrainConfig.{name} must be one of {list(allowed)}; got {value!r}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Training budget, optimiser, execution plan and memory limits of a population.

    Attributes:
        steps: optimiser steps per individual.
        batch_size: training examples per step (the same batches for every individual).
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        learning_rate: peak learning rate.
        momentum: SGD momentum (ignored by Adam); 0 is plain SGD.
        schedule: ``"constant"`` or ``"cosine"`` (decay to 0 over ``steps``).
        eval_batch_size: examples per forward pass when evaluating.
        steps_per_call: fully unrolled steps per jitted call; the host loops over calls. More
            steps a call cut dispatch overhead but lengthen compiles (one step per call is
            usually best on a CPU, where compiles dominate).
        plan: ``"masked"`` (one program at ``max_bounds()``), ``"grouped"`` (one program per
            distinct ``bounds``) or ``"auto"`` (a cost model picks, see ``evonas.train.plans``).
        memory_budget_mb: device memory one chunk of the population may use, per device.
        evaluate_test: also measure the test split (for final reports, never for fitness).
        compile_cache_dir: JAX's persistent compilation cache directory (``None``: leave JAX's
            setting alone); used by every plan, it is what makes ``grouped`` cheap across runs.
    """

    steps: int = 300
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-2
    momentum: float = 0.9
    schedule: str = "cosine"
    eval_batch_size: int = 1000
    steps_per_call: int = 1
    plan: str = "auto"
    memory_budget_mb: float = 2048.0
    evaluate_test: bool = False
    compile_cache_dir: str | None = None

    def __post_init__(self):
        _check_int("steps", self.steps)
        _check_int("batch_size", self.batch_size)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("learning_rate", self.learning_rate, 0.0, float("inf"), open_low=True)
        _check_float("momentum", self.momentum, 0.0, 1.0, open_low=False)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_int("eval_batch_size", self.eval_batch_size)
        _check_int("steps_per_call", self.steps_per_call)
        _check_choice("plan", self.plan, PLANS)
        _check_float("memory_budget_mb", self.memory_budget_mb, 0.0, float("inf"), open_low=True)
        if not isinstance(self.evaluate_test, bool):
            raise ValueError(f"TrainConfig.evaluate_test must be True or False; "
                             f"got {self.evaluate_test!r}")
        if self.compile_cache_dir is not None and not isinstance(self.compile_cache_dir, str):
            raise ValueError(f"TrainConfig.compile_cache_dir must be a path string or None; "
                             f"got {self.compile_cache_dir!r}")

    def program_options(self) -> ProgramOptions:
        """The fields that shape compiled programs (and so key their cache)."""
        return ProgramOptions(
            self.steps, self.batch_size, self.optimizer, float(self.learning_rate),
            float(self.momentum), self.schedule, self.eval_batch_size, self.steps_per_call,
        )


@dataclasses.dataclass(frozen=True)
class ProgramOptions:
    """The hashable part of :class:`TrainConfig` that compiled programs depend on.

    Plan, memory budget and cache directory are left out, so changing them reuses programs.
    """

    steps: int
    batch_size: int
    optimizer: str
    learning_rate: float
    momentum: float
    schedule: str
    eval_batch_size: int
    steps_per_call: int

    def optimizer_fn(self) -> optax.GradientTransformation:
        """The optax optimiser with its learning-rate schedule."""
        if self.schedule == "cosine":
            lr: Any = optax.cosine_decay_schedule(self.learning_rate, self.steps)
        else:
            lr = self.learning_rate
        if self.optimizer == "adam":
            return optax.adam(lr)
        return optax.sgd(lr, momentum=self.momentum or None)
