"""The parts of an experiment built from its config: dataset, encoding, strategy, evaluator.

Everything is built and checked before a run directory is touched, so a config that can't run
fails with one readable line and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from evonas.constraints import closest_to_feasible
from evonas.data import Dataset, load_dataset
from evonas.evaluators.training import TrainingEvaluator
from evonas.experiment.config import ExperimentConfig
from evonas.genomes import get_encoding
from evonas.strategies import Strategy, get_strategy
from evonas.strategies.base import num_objectives

# Metrics a training evaluation measures (see evonas.train.PopulationResult), the measured
# latency (evonas.evaluators.LatencyMeter), and the analytic costs every encoding reports (an
# encoding may report more, such as ``depth``: see cost_metrics). An objective or a constraint
# must name one of them.
TRAINED_METRICS = ("val_acc", "val_loss", "val_precision", "val_recall", "val_f1", "train_loss")
MEASURED_METRICS = ("latency",)
COST_METRICS = ("params", "flops")

# Strategies that take one objective but accept several listed: MAP-Elites optimises the first
# within each cell of its descriptors, the others are recorded and form the run's front.
DIVERSITY_STRATEGIES = ("map_elites",)


def cost_metrics(encoding: Any) -> tuple[str, ...]:
    """The analytic costs ``encoding.cost`` reports (``params``, ``flops``, maybe ``depth``),
    without the supernet's ``executed_*`` counts."""
    genome = jax.numpy.zeros((encoding.space.num_genes,), jax.numpy.int32)
    keys = jax.eval_shape(encoding.cost, genome).keys()
    return tuple(k for k in keys if not k.startswith("executed_"))


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


def _batch_field(probe: Any) -> str:
    """The hyper-parameter that sets how many genomes one ``ask`` returns."""
    # Regularized evolution, random search and MAP-Elites take ``batch_size``; the GA, NSGA-II
    # and the evosax algorithms ask a whole ``population_size`` per generation.
    fields = {f.name for f in dataclasses.fields(probe)} if dataclasses.is_dataclass(probe) else ()
    return "batch_size" if "batch_size" in fields else "population_size"


def descriptor_fn(encoding: Any, names: Any) -> Callable[[jax.Array], jax.Array]:
    """``genomes int32[B, G] -> float32[B, D]``: the named analytic costs of each genome, the
    descriptors of a MAP-Elites archive (e.g. ``["params", "depth"]``).

    Raises:
        ValueError: a name the encoding's ``cost`` does not report.
    """
    if isinstance(names, str):
        names = [names]
    known = cost_metrics(encoding)
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"strategy.params.descriptors must list cost names; got {names!r}; "
                         f"allowed: {list(known)}")
    for name in names:
        if name not in known:
            raise ValueError(f"strategy.params.descriptors names {name!r}, which the "
                             f"{getattr(encoding, 'name', 'encoding')!r} encoding does not "
                             f"report; allowed: {list(known)}")
    names = tuple(names)
    cost = jax.vmap(encoding.cost)

    def descriptors(genomes: jax.Array) -> jax.Array:
        values = cost(genomes)
        return jax.numpy.stack([values[n] for n in names], axis=-1).astype(jax.numpy.float32)

    return descriptors


def _strategy(config: ExperimentConfig, encoding: Any) -> Strategy:
    """The strategy asking ``search.population_size`` genomes per generation.

    A multi-objective strategy (``nsga2``, ``weighted_sum``) gets every objective's direction;
    a single-objective one gets the first's and may only be used with one objective (MAP-Elites
    excepted: it optimises the first objective in each cell of its descriptors).
    """
    name, space = config.strategy.name, encoding.space
    params = dict(config.strategy.params)
    objectives = config.search.objectives
    batch = config.search.population_size
    if "descriptors" in params and not callable(params["descriptors"]):
        params["descriptors"] = descriptor_fn(encoding, params["descriptors"])
    probe = get_strategy(name, space, **params)
    multi = num_objectives(probe) > 1
    if name == "weighted_sum":  # the batch is the wrapped strategy's
        inner = dict(params.get("strategy_params") or {})
        where, field = "strategy.params.strategy_params", _batch_field(probe.inner)
        given, inner[field] = inner.get(field), batch
        params["strategy_params"] = inner
    else:
        where, field = "strategy.params", _batch_field(probe)
        given, params[field] = params.get(field), batch
    if given is not None and given != batch:
        raise ValueError(
            f"{where}.{field}={given} disagrees with search.population_size={batch} (the "
            f"genomes evaluated per generation); remove {where}.{field}"
        )
    names = [o.name for o in objectives]
    if multi:
        if len(objectives) < 2:
            raise ValueError(
                f"strategy {name!r} is multi-objective but search.objectives lists one "
                f"({names}); add another, e.g. {{name: params, direction: min}}"
            )
        maximize: Any = tuple(o.maximize for o in objectives)
    else:
        if len(objectives) > 1 and name not in DIVERSITY_STRATEGIES:
            raise ValueError(
                f"strategy {name!r} optimises one objective but search.objectives lists "
                f"{len(objectives)} ({names}); use a multi-objective strategy ('nsga2', "
                f"'weighted_sum') or 'map_elites', or list one objective"
            )
        maximize = objectives[0].maximize
    strategy = get_strategy(name, space, maximize=maximize, **params)
    if strategy.batch_size != batch:
        raise ValueError(
            f"strategy {name!r} asks {strategy.batch_size} genomes per generation, "
            f"not search.population_size={batch}; set them equal"
        )
    return strategy


def check_metrics(config: ExperimentConfig, encoding: Any) -> None:
    """Objectives and constraints must name a measured metric or an analytic cost."""
    known = TRAINED_METRICS + MEASURED_METRICS + cost_metrics(encoding)
    names = [(f"search.objectives[{i}].name", o.name) for i, o in enumerate(
        config.search.objectives)]
    names += [(f"search.constraints[{i}]", c.metric) for i, c in enumerate(
        config.search.parsed_constraints())]
    for where, name in names:
        if name not in known:
            raise ValueError(f"{where} names the metric {name!r}; allowed: {list(known)}")


def check_satisfiable(config: ExperimentConfig, encoding: Any) -> None:
    """Constraints on analytic costs must be met by some architecture of the space.

    Checked before anything is trained (random samples, then a search that minimises the
    violation; see ``closest_to_feasible``), so an impossible bound fails in seconds.

    Raises:
        ValueError: naming the constraints and the closest architecture's costs.
    """
    costs = cost_metrics(encoding)
    constraints = [c for c in config.search.parsed_constraints() if c.metric in costs]
    if not constraints:
        return
    key = jax.random.fold_in(jax.random.key(config.search.seed), 7)
    _, values, gap = closest_to_feasible(encoding, constraints, key)
    if gap > 0.0:
        wanted = ", ".join(f"{c.metric} {c.operator} {c.bound:g}" for c in constraints)
        closest = ", ".join(f"{c.metric}={values[c.metric]:g}" for c in constraints)
        raise ValueError(
            f"no architecture of the {config.encoding.name!r} space meets {wanted}: the "
            f"closest found ({closest}) is outside; loosen search.constraints or change "
            f"encoding.options"
        )


def build_model_parts(config: ExperimentConfig) -> tuple[Dataset, Any, dict[str, Any]]:
    """The dataset, the encoding and its resolved options: what retraining an architecture of
    the experiment needs.

    Raises:
        ValueError: a dataset that can't be loaded or encoding options it rejects.
    """
    dataset = load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                           seed=config.dataset.seed, limit=config.dataset.limit)
    options = encoding_options(config, dataset)
    try:
        encoding = get_encoding(config.encoding.name, **options)
    except TypeError as err:  # an option the encoding's factory does not take
        raise ValueError(f"encoding.options {options} rejected by {config.encoding.name!r}: "
                         f"{err}") from None
    return dataset, encoding, options


def build_components(config: ExperimentConfig) -> Components:
    """Loads the dataset and builds the encoding, strategy and evaluator of ``config``.

    Raises:
        ValueError: any part the config describes can't be built (with the part's message).
    """
    dataset, encoding, options = build_model_parts(config)
    check_metrics(config, encoding)
    check_satisfiable(config, encoding)
    try:
        strategy = _strategy(config, encoding)
    except TypeError as err:  # a parameter the strategy does not take
        raise ValueError(f"strategy.params {dict(config.strategy.params)} rejected by "
                         f"{config.strategy.name!r}: {err}") from None
    train = dataclasses.replace(config.train, plan=runner_plan(config.train.plan))
    evaluator = TrainingEvaluator(encoding, dataset, train, fitness="val_acc")
    return Components(dataset, encoding, options, strategy, evaluator)
