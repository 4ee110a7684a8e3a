"""``TrainConfig``: how every individual of a population is trained and evaluated."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from typing import Any

import jax
import jax.numpy as jnp
import optax

from evonas import checks
from evonas.fields import setting
from evonas.train.augment import Augment

OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "bfloat16")
SCHEDULES = ("constant", "cosine")
PLANS = ("auto", "masked", "grouped")
XLA_LEVELS = ("default", "fast")

# XLA:CPU debug options per program under ``TrainConfig.xla="fast"``. Convolutions and matmuls
# run as library calls whatever the options, so XLA's optimisation mostly buys faster
# elementwise code. Measured per program on the project's 2-core CPU (small 1-D CNNs, MNIST-1D,
# batch 128; interleaved, same process), against XLA's defaults:
# * XLA:CPU's newer fusion emitters cost about 0.3 s of compile per training program; the
#   legacy loop emitters (``xla_cpu_use_fusion_emitters=False``) compile it in about 60 % of the
#   time for a training step about 20 % slower, a gain below a few thousand steps;
# * backend level 1 compiles faster than the default level 2 and its steps were no slower;
# * level 0 makes a step about 5x slower, but the programs run once per call or group (init,
#   evaluation) compile 3-5x faster there and lose no more than a few tens of ms running.
_FAST_ONCE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
              "xla_cpu_use_fusion_emitters": False}
_FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "init_population": _FAST_ONCE,
    "evaluate_group": _FAST_ONCE,
    "train_chunk": {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False},
}


# Which ops XLA:CPU hands to the YNNPACK library, under ``"fast"``, for every program: dots
# only. jaxlib 0.10.2 also hands it every convolution by default, and its 2-D convolution
# weight gradient is the slow part of an image training step on a CPU: measured on the
# project's 2-core CPU, batch 128, 28x28x32 -> 32 3x3, 137 ms against 20 ms for XLA's own
# convolution, whose forward pass was no slower. ``benchmarks/image_step.py`` times whole
# training steps both ways (2-D and 1-D networks). The numbers are the same run to run, not
# the same last bits as the library's convolutions.
_LIBRARY_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def compiler_options(program: str, xla: str) -> dict[str, Any] | None:
    """The ``jax.jit(compiler_options=...)`` of one trainer program under ``TrainConfig.xla``.

    ``"default"``: XLA's defaults. ``"fast"``: XLA:CPU's legacy loop emitters everywhere, the
    programs that run once per call or group (``init_population``, ``evaluate_group``) at
    backend optimisation level 0 without LLVM's expensive passes, and the training step (run
    every step) at level 1 (see the measurements above ``_FAST_OPTIONS``); on a CPU whose
    jaxlib takes it, convolutions in XLA's own kernels rather than a library's (see
    ``_LIBRARY_OPTIONS``). On accelerators the CPU-only options are ignored by name; use
    ``"default"`` there. An option the process's ``XLA_FLAGS`` sets itself
    (``--xla_backend_optimization_level=0``, say) is left to it: the user's flags win over these
    choices.
    """
    if xla == "default":
        return None
    chosen = _user_xla_flags()
    options = {k: v for k, v in _FAST_OPTIONS[program].items() if k not in chosen}
    return {**options, **(library_options(xla) or {})}


def library_options(xla: str) -> dict[str, Any] | None:
    """The part of :func:`compiler_options` that picks which ops run in a library rather than
    XLA's own kernels (``_LIBRARY_OPTIONS`` under ``"fast"``, where this jaxlib takes it), or
    None; the standalone trainer's step uses it too."""
    if xla == "default" or not _library_options_taken():
        return None
    chosen = _user_xla_flags()
    return {k: v for k, v in _LIBRARY_OPTIONS.items() if k not in chosen} or None


@functools.cache
def _library_options_taken() -> bool:
    """Whether this process's default backend is a CPU whose XLA takes ``_LIBRARY_OPTIONS``: an
    option another jaxlib lacks or spells differently is left out rather than failing every
    compile."""
    if jax.default_backend() != "cpu":
        return False
    try:
        jax.jit(lambda a: a @ a, compiler_options=_LIBRARY_OPTIONS).lower(
            jax.ShapeDtypeStruct((2, 2), jnp.float32)).compile()
    except Exception:  # noqa: BLE001 - any refusal means: not this jaxlib
        return False
    return True


def _user_xla_flags() -> set[str]:
    """The option names the ``XLA_FLAGS`` environment variable sets (``--name=value``)."""
    return set(re.findall(r"--(xla_\w+)", os.environ.get("XLA_FLAGS", "")))


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
        compile_cache_dir: the persistent compilation cache: ``"auto"`` (default: your cache
            directory, see :func:`~evonas.train.cache.default_cache_dir`), a directory, or
            ``None``/``off`` (none: every run compiles everything). A second run of the same
            experiment loads its programs from there instead of compiling them; entries are
            checked against their key and the directory is bounded
            (:class:`~evonas.train.cache.SignedCache`). Never taken from a run directory.
        xla: XLA compile options of the trainer's programs: ``"fast"`` (default) trades a
            little step speed for much shorter compiles (the once-run programs, init and
            evaluation, at the lowest optimisation level) and, on a CPU, keeps convolutions in
            XLA's own kernels (faster image steps than jaxlib's library default);
            ``"default"`` leaves XLA's defaults (see :func:`compiler_options`). Compiles
            dominate short CPU runs; measured on the project's 2-core CPU with
            ``benchmarks/throughput.py`` and ``benchmarks/image_step.py``.
        max_programs: the most compiled programs a trainer's cache keeps between calls; past
            it the cache starts over (memory stays bounded over a long search; a shape met again
            compiles again, to the same program and numbers).
        exact_modules: under ``grouped`` and ``auto``, a group whose members all build the same
            standalone module (``encoding.build``; every group of one) trains that module rather
            than the supernet at its bounds: the same function and numbers, at the plain model's
            step cost (no arch, masks or activation mixing). ``masked`` never does, so it keeps
            one program whatever the population.
        augment: the image pipeline inside the training step (:class:`~evonas.train.augment.
            Augment`: random crop with padding, horizontal flip, cutout), or None (off). The
            final stage's retraining uses it too.
        weight_decay: decoupled weight decay (AdamW; SGD adds it to the gradient); 0 is off.
        precision: ``"float32"``, or ``"bfloat16"``: forward and backward passes in bfloat16
            with float32 parameters and optimiser state (for GPU and TPU; slower on CPU).
        label_smoothing: the training loss's targets put ``1 - label_smoothing`` on the label
            and ``label_smoothing / C`` on every class (Keras's and PyTorch's meaning), in the
            search's training and the final stage's retraining alike; 0 (the default) is off.
            Fitness and test accuracy are unchanged measures.
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
    compile_cache_dir: str | None = setting("auto", numbers=False)
    exact_modules: bool = True
    xla: str = "fast"
    max_programs: int = setting(128, numbers=False)
    augment: Augment | None = None
    weight_decay: float = 0.0
    precision: str = "float32"
    label_smoothing: float = 0.0

    def __post_init__(self):
        for field in ("steps", "batch_size", "eval_batch_size", "steps_per_call", "max_programs"):
            checks.positive_int(f"TrainConfig.{field}", getattr(self, field))
        checks.choice("TrainConfig.optimizer", self.optimizer, OPTIMIZERS)
        checks.number("TrainConfig.learning_rate", self.learning_rate, 0.0, open_low=True)
        checks.number("TrainConfig.momentum", self.momentum, 0.0, 1.0, open_high=True)
        checks.choice("TrainConfig.schedule", self.schedule, SCHEDULES)
        checks.choice("TrainConfig.plan", self.plan, PLANS)
        checks.choice("TrainConfig.xla", self.xla, XLA_LEVELS)
        checks.number("TrainConfig.memory_budget_mb", self.memory_budget_mb, 0.0, open_low=True)
        checks.boolean("TrainConfig.evaluate_test", self.evaluate_test)
        checks.boolean("TrainConfig.exact_modules", self.exact_modules)
        checks.number("TrainConfig.weight_decay", self.weight_decay, 0.0)
        checks.choice("TrainConfig.precision", self.precision, PRECISIONS)
        checks.number("TrainConfig.label_smoothing", self.label_smoothing, 0.0, 1.0,
                      open_high=True)
        if self.augment is not None and not isinstance(self.augment, Augment):
            raise ValueError(f"TrainConfig.augment must be an Augment or None; got "
                             f"{self.augment!r}")
        if self.compile_cache_dir is False or self.compile_cache_dir == "off":
            object.__setattr__(self, "compile_cache_dir", None)  # YAML's `off` is False
        if self.compile_cache_dir is not None and (
                not isinstance(self.compile_cache_dir, str) or not self.compile_cache_dir):
            raise ValueError(f"TrainConfig.compile_cache_dir must be 'auto', a directory or null "
                             f"(off); got {self.compile_cache_dir!r}")

    def program_options(self) -> ProgramOptions:
        """The fields that shape compiled programs (and so key their cache)."""
        return ProgramOptions(
            self.steps, self.batch_size, self.optimizer, float(self.learning_rate),
            float(self.momentum), self.schedule, self.eval_batch_size, self.steps_per_call,
            self.xla, self.augment if self.augment is not None and self.augment.active else None,
            float(self.weight_decay), self.precision, float(self.label_smoothing),
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
    xla: str = "default"
    augment: Augment | None = None
    weight_decay: float = 0.0
    precision: str = "float32"
    label_smoothing: float = 0.0

    def optimizer_fn(self) -> optax.GradientTransformation:
        """The optax optimiser with its learning-rate schedule."""
        if self.schedule == "cosine":
            lr: Any = optax.cosine_decay_schedule(self.learning_rate, self.steps)
        else:
            lr = self.learning_rate
        return self.optimizer_at(lr)

    def optimizer_at(self, learning_rate: Any) -> optax.GradientTransformation:
        """The optax optimiser at ``learning_rate``: a number, an optax schedule, or (under
        ``optax.inject_hyperparams``) a value set before each step."""
        lr = learning_rate
        if self.optimizer == "adam":
            return optax.adamw(lr, weight_decay=self.weight_decay) if self.weight_decay else (
                optax.adam(lr))
        sgd = optax.sgd(lr, momentum=self.momentum or None)
        if self.weight_decay:
            return optax.chain(optax.add_decayed_weights(self.weight_decay), sgd)
        return sgd

    def compute(self, tree: Any) -> Any:
        """``tree``'s floating leaves in the compute precision (parameters and inputs before
        a forward pass; unchanged in float32)."""
        if self.precision == "float32":
            return tree
        return jax.tree.map(lambda a: a.astype(jnp.bfloat16) if jnp.issubdtype(
            a.dtype, jnp.floating) else a, tree)
