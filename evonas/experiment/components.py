"""The parts of an experiment built from its config: dataset, encoding, strategy, evaluator.

Everything is built and checked before a run directory is touched, so a config that can't run
fails with one readable line and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax

from evonas.data import Dataset, load_dataset
from evonas.evaluators.training import TrainingEvaluator
from evonas.experiment.config import ExperimentConfig
from evonas.genomes import get_encoding
from evonas.strategies import Strategy, get_strategy

# Metrics a training evaluation measures (see evonas.train.PopulationResult) and analytic costs
# (see Encoding.cost); an objective or a constraint must name one of them.
TRAINED_METRICS = ("val_acc", "val_loss", "val_precision", "val_recall", "val_f1", "train_loss")
COST_METRICS = ("params", "flops")


class Components(NamedTuple):
    """What a run needs, built from one :class:`ExperimentConfig`."""

    dataset: Dataset
    encoding: Any
    encoding_options: dict[str, Any]
    strategy: Strategy
    evaluator: TrainingEvaluator


def runner_plan(plan: str) -> str:
    """The execution plan the runner uses: ``auto`` resolved from the platform alone.

    ``auto`` in the trainer decides from measured step times, which differ between a run that
    restarted (cold caches) and one that did not; grouping changes float rounding, so a resumed run
    could drift from an uninterrupted one. The runner needs rows that are identical either way,
    so it resolves ``auto`` once: ``grouped`` on a CPU (compute-bound; exact shapes), ``masked``
    on accelerators (one program keeps the device busy).
    """
    if plan != "auto":
        return plan
    return "grouped" if jax.default_backend() == "cpu" else "masked"


def encoding_options(config: ExperimentConfig, dataset: Dataset) -> dict[str, Any]:
    """The encoding's options with the dataset's input shape and class count filled in."""
    options = dict(config.encoding.options)
    if config.encoding.name != "nb201":
        options.setdefault("input_shape", tuple(int(d) for d in dataset.input_shape))
        options.setdefault("num_classes", int(dataset.num_classes))
    return options


def _strategy(config: ExperimentConfig, space: Any) -> Strategy:
    """The strategy asking ``search.population_size`` genomes per generation."""
    params = dict(config.strategy.params)
    maximize = config.search.objectives[0].maximize
    batch = config.search.population_size
    probe = get_strategy(config.strategy.name, space, **params)
    # Regularized evolution and random search take the batch as ``batch_size``; the GA and the
    # evosax algorithms ask a whole ``population_size`` per generation.
    fields = {f.name for f in dataclasses.fields(probe)} if dataclasses.is_dataclass(probe) else ()
    field = "batch_size" if "batch_size" in fields else "population_size"
    if field in params and params[field] != batch:
        raise ValueError(
            f"strategy.params.{field}={params[field]} disagrees with search.population_size="
            f"{batch} (the genomes evaluated per generation); remove strategy.params.{field}"
        )
    params[field] = batch
    strategy = get_strategy(config.strategy.name, space, maximize=maximize, **params)
    if strategy.batch_size != batch:
        raise ValueError(
            f"strategy {config.strategy.name!r} asks {strategy.batch_size} genomes per generation, "
            f"not search.population_size={batch}; set them equal"
        )
    return strategy


def check_metrics(config: ExperimentConfig) -> None:
    """Objectives and constraints must name a measured metric or an analytic cost."""
    known = TRAINED_METRICS + COST_METRICS
    names = [(f"search.objectives[{i}].name", o.name) for i, o in enumerate(
        config.search.objectives)]
    names += [(f"search.constraints[{i}]", c.metric) for i, c in enumerate(
        config.search.parsed_constraints())]
    for where, name in names:
        if name not in known:
            raise ValueError(f"{where} names the metric {name!r}; allowed: {list(known)}")


def build_components(config: ExperimentConfig) -> Components:
    """Loads the dataset and builds the encoding, strategy and evaluator of ``config``.

    Raises:
        ValueError: any part the config describes can't be built (with the part's message).
    """
    check_metrics(config)
    dataset = load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                           seed=config.dataset.seed, limit=config.dataset.limit)
    options = encoding_options(config, dataset)
    try:
        encoding = get_encoding(config.encoding.name, **options)
    except TypeError as err:  # an option the encoding's factory does not take
        raise ValueError(f"encoding.options {options} rejected by {config.encoding.name!r}: "
                         f"{err}") from None
    try:
        strategy = _strategy(config, encoding.space)
    except TypeError as err:  # a parameter the strategy does not take
        raise ValueError(f"strategy.params {dict(config.strategy.params)} rejected by "
                         f"{config.strategy.name!r}: {err}") from None
    train = dataclasses.replace(config.train, plan=runner_plan(config.train.plan))
    evaluator = TrainingEvaluator(encoding, dataset, train, fitness="val_acc")
    return Components(dataset, encoding, options, strategy, evaluator)
