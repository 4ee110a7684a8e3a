"""The base evaluators by name: built-ins, registrations and the entry-point group
``evonas.evaluators`` (see :class:`evonas.registry.Registry`).

A base evaluator's factory takes the :class:`Context` of an experiment (encoding, dataset or
table, training config, the shared program cache) and its own options:
``factory(context, **options) -> Evaluator``. The experiment wraps it in what its config turns
on (``evonas.experiment.evaluation``: costs, latency, proxies, inheritance, halving, constraints).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from evonas.evaluators.oneshot import FewShotEvaluator, OneShotEvaluator
from evonas.evaluators.tabular import TabularEvaluator
from evonas.evaluators.training import TrainingEvaluator
from evonas.registry import Factory, Registry
from evonas.train import ProgramCache, TrainConfig

ENTRY_POINT_GROUP = "evonas.evaluators"


class Context(NamedTuple):
    """What an evaluator of an experiment may be built from.

    Attributes:
        encoding: the encoding searched.
        dataset: the ``evonas.data.Dataset`` (None in a tabular run).
        table: the benchmark ``Table`` of a tabular run (else None).
        train: how architectures train.
        fitness: the metric a trained evaluator returns as fitness.
        cache: the compiled programs every evaluator of the run shares.
        trainer: what trains a population (``train_population``'s signature; a multi-process
            run's shares each call), or None for ``train_population``.
    """

    encoding: Any
    dataset: Any
    table: Any
    train: TrainConfig
    fitness: str = "val_acc"
    cache: ProgramCache | None = None
    trainer: Callable[..., Any] | None = None


def training(context: Context) -> TrainingEvaluator:
    """Trains every new architecture (``evonas.train.train_population``)."""
    return TrainingEvaluator(context.encoding, context.dataset, context.train, context.fitness,
                             cache=context.cache, trainer=context.trainer)


def tabular(context: Context, noise: float = 0.0) -> TabularEvaluator:
    """Looks every architecture up in the run's benchmark table."""
    return TabularEvaluator(context.table, noise=noise)


def oneshot(context: Context, supernet_steps: int = 4000) -> OneShotEvaluator:
    """Scores every architecture with the weights of one trained supernet."""
    return OneShotEvaluator(context.encoding, context.dataset, context.train, supernet_steps,
                            fitness=context.fitness, cache=context.cache)


def few_shot(context: Context, supernet_steps: int = 4000, split: int | str = "auto",
             split_steps: int = 1000, max_choices: int = 8) -> FewShotEvaluator:
    """Scores every architecture with the sub-supernet of its choice of one gene, each trained
    on from the one-shot supernet's weights."""
    return FewShotEvaluator(context.encoding, context.dataset, context.train, supernet_steps,
                            fitness=context.fitness, cache=context.cache, split=split,
                            split_steps=split_steps, max_choices=max_choices)


BUILTIN_EVALUATORS: dict[str, Factory] = {
    "training": training,
    "tabular": tabular,
    "oneshot": oneshot,
    "few_shot": few_shot,
}
EVALUATORS = Registry("evaluator", ENTRY_POINT_GROUP, BUILTIN_EVALUATORS)
# ``register_evaluator(name, factory)`` makes ``factory(context, **options)`` the base evaluator
# ``evaluator: {name: NAME}`` (a plug-in package may instead list it under the entry-point group
# ``evonas.evaluators``); ``list_evaluators()`` names every one, sorted.
register_evaluator = EVALUATORS.register
list_evaluators = EVALUATORS.names


def get_evaluator(name: str, context: Context, **options: Any) -> Any:
    """The base evaluator ``name`` of an experiment's ``context``.

    Raises:
        ValueError: an unknown name (listing the known ones), or an option its factory does not
            take (naming it and the ones it takes).
    """
    return EVALUATORS.build(name, context, skip=("context",), **options)
