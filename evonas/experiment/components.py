"""The parts of an experiment built from its config: dataset, encoding, strategy, evaluator.

Everything is built and checked before a run directory is touched, so a config that can't run
fails with one readable line and leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from evonas import streams
from evonas.benchmarks import Table, get_benchmark
from evonas.data import Dataset, load_dataset
from evonas.evaluators import Context
from evonas.experiment.config import ExperimentConfig
from evonas.experiment.evaluation import build_evaluator
from evonas.genomes import accepts_option, check_trainable, cost_names, get_encoding
from evonas.objectives.metrics import MEASURED_METRICS, TRAINED_METRICS
from evonas.strategies import (
    Feasible,
    Prefilter,
    Strategy,
    bind,
    closest_to_feasible,
    get_strategy,
    num_objectives,
)
from evonas.train import ProgramCache
from evonas.train.proxies import check_proxies

# Strategies that take one objective but accept several listed: MAP-Elites optimises the first
# within each cell of its descriptors, the others are recorded and form the run's front.
DIVERSITY_STRATEGIES = ("map_elites",)

# What the experiment fills into an encoding's options from the dataset, when its factory takes
# them (by the factory's signature, never by the encoding's name).
DATASET_OPTIONS = ("input_shape", "num_classes")


class Components(NamedTuple):
    """What a run needs, built from one :class:`ExperimentConfig`.

    ``dataset`` is None and ``table`` set for a tabular run (nothing is trained).
    """

    dataset: Dataset | None
    encoding: Any
    encoding_options: dict[str, Any]
    strategy: Strategy
    evaluator: Any
    table: Table | None = None
    cache: ProgramCache | None = None


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
    """The encoding's options with the dataset's ``input_shape`` and ``num_classes`` filled in
    where the encoding's factory takes them and the config does not set them."""
    options = dict(config.encoding.options)
    filled = {"input_shape": tuple(int(d) for d in dataset.input_shape),
              "num_classes": int(dataset.num_classes)}
    for name in DATASET_OPTIONS:
        if name not in options and accepts_option(config.encoding.name, name):
            options[name] = filled[name]
    return options


def _batch_field(probe: Any) -> str:
    """The hyper-parameter that sets how many genomes one ``ask`` returns."""
    # Regularized evolution, random search and MAP-Elites take ``batch_size``; the GA, NSGA-II
    # and the evosax algorithms ask a whole ``population_size`` per generation.
    fields = {f.name for f in dataclasses.fields(probe)} if dataclasses.is_dataclass(probe) else ()
    if "batch_size" not in fields and "population_size" in fields:
        return "population_size"
    return "batch_size"  # a field, or a wrapper's factory argument (the hybrid's)


def descriptor_fn(encoding: Any, names: Any) -> Callable[[jax.Array], jax.Array]:
    """``genomes int32[B, G] -> float32[B, D]``: the named analytic costs of each genome, the
    descriptors of a MAP-Elites archive (e.g. ``["params", "depth"]``).

    Raises:
        ValueError: a name the encoding's ``cost`` does not report.
    """
    if isinstance(names, str):
        names = [names]
    known = cost_names(encoding)
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


def known_metrics(config: ExperimentConfig, encoding: Any, table: Table | None = None
                  ) -> tuple[str, ...]:
    """What objectives and constraints may name: the trained metrics and measured latency (a
    training run) or the table's fitness and cost columns (a tabular run), and the encoding's
    analytic costs."""
    if table is not None:
        return tuple(dict.fromkeys((*table.searchable, *cost_names(encoding))))
    return tuple(dict.fromkeys(TRAINED_METRICS + MEASURED_METRICS + tuple(
        config.evaluator.proxies) + cost_names(encoding)))


def check_metrics(config: ExperimentConfig, encoding: Any, table: Table | None = None) -> None:
    """Objectives and constraints must name a metric the run measures or an analytic cost."""
    known = known_metrics(config, encoding, table)
    names = [(f"search.objectives[{i}].name", o.name) for i, o in enumerate(
        config.search.objectives)]
    names += [(f"search.constraints[{i}]", c.metric) for i, c in enumerate(
        config.search.parsed_constraints())]
    for where, name in names:
        if name not in known:
            hidden = ""
            if table is not None and name in table.report:
                hidden = f" ({name!r} is report-only in table {table.name!r}: never searched on)"
            raise ValueError(f"{where} names the metric {name!r}{hidden}; allowed: {list(known)}")


def check_satisfiable(config: ExperimentConfig, encoding: Any) -> None:
    """Constraints on analytic costs must be met by some architecture of the space.

    Checked before anything is trained (random samples, then a search that minimises the
    violation; see ``closest_to_feasible``), so an impossible bound fails in seconds.

    Raises:
        ValueError: naming the constraints and the closest architecture's costs.
    """
    costs = cost_names(encoding)
    constraints = [c for c in config.search.parsed_constraints() if c.metric in costs]
    if not constraints:
        return
    key = streams.stream(config.search.seed, "satisfiable")
    _, values, gap = closest_to_feasible(encoding, constraints, key)
    if gap > 0.0:
        wanted = ", ".join(f"{c.metric} {c.operator} {c.bound:g}" for c in constraints)
        closest = ", ".join(f"{c.metric}={values[c.metric]:g}" for c in constraints)
        raise ValueError(
            f"no architecture of the {config.encoding.name!r} space meets {wanted}: the "
            f"closest found ({closest}) is outside; loosen search.constraints or change "
            f"encoding.options"
        )


def load_data(config: ExperimentConfig, given: Dataset | None = None) -> Dataset:
    """The experiment's dataset: ``given`` (data from Python, ``dataset.name: arrays``), else
    loaded as ``config.dataset`` says; its content checked against ``dataset.digest`` when the
    config records one (a resumed run).

    Raises:
        ValueError: the data can't be loaded (one line), or is not the data the run started on.
    """
    section = config.dataset
    if given is not None:
        if not isinstance(given, Dataset):
            raise ValueError(f"dataset= must be an evonas.Dataset (Dataset.from_arrays(x, y)); "
                             f"got {type(given).__name__}")
        dataset = given
    else:
        dataset = load_dataset(section.name, val_fraction=section.val_fraction,
                               seed=section.seed, limit=section.limit, path=section.path,
                               label=section.label, image_size=section.image_size,
                               data_dir=section.data_dir, download=section.download)
    if section.digest is not None and dataset.digest != section.digest:
        where = f" at {section.path}" if section.path else ""
        raise ValueError(
            f"the data{where} is not the data this run started on (content digest "
            f"{str(dataset.digest)[:12]}, the run's {section.digest[:12]}): resume it on the "
            "same data, or start a new run")
    return dataset


def build_model_parts(config: ExperimentConfig, given: Dataset | None = None
                      ) -> tuple[Dataset, Any, dict[str, Any]]:
    """The dataset, the encoding and its resolved options: what retraining an architecture of
    the experiment needs.

    Raises:
        ValueError: a dataset that can't be loaded, encoding options the factory rejects (naming
            the option and the factory), or an encoding that can't be trained and exported.
    """
    dataset = load_data(config, given)
    n = len(dataset.y_train)
    if config.train.batch_size > n:
        raise ValueError(
            f"train.batch_size={config.train.batch_size} exceeds the {n} training examples of "
            f"dataset {config.dataset.name!r} (dataset.limit={config.dataset.limit}, "
            f"val_fraction={config.dataset.val_fraction}); lower train.batch_size to at most {n} "
            "or raise dataset.limit"
        )
    options = encoding_options(config, dataset)
    encoding = get_encoding(config.encoding.name, **options)
    check_trainable(encoding)
    return dataset, encoding, options


def _physical_memory() -> float | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_data_memory(config: ExperimentConfig, dataset: Dataset) -> None:
    """The splits are held on every device while a population trains (float32): refuse data
    larger than ``train.memory_budget_mb`` before anything runs.

    Raises:
        ValueError: naming the data's size, the budget and what to set.
    """
    size = sum(getattr(dataset, f"x_{s}").nbytes + getattr(dataset, f"y_{s}").nbytes
               for s in ("train", "val", "test"))
    budget = config.train.memory_budget_mb * 2**20
    if size > budget:
        raise ValueError(
            f"dataset {config.dataset.name!r} takes {size / 2**20:,.0f} MB as float32 "
            f"({len(dataset.y_train):,} train, {len(dataset.y_val):,} validation and "
            f"{len(dataset.y_test):,} test examples of shape {list(dataset.input_shape)}), more "
            f"than train.memory_budget_mb={config.train.memory_budget_mb:g} of each device: "
            "raise train.memory_budget_mb if the device holds more, set dataset.limit, or "
            "resize the images (dataset.image_size)")


def check_population_memory(config: ExperimentConfig, encoding: Any) -> None:
    """A generation's population is initialised at the space's largest shapes all at once:
    refuse one that can't fit in this machine's memory, before anything runs.

    Raises:
        ValueError: naming the population, the memory it needs and the machine's.
    """
    genome = jax.numpy.zeros((encoding.space.num_genes,), jax.numpy.int32)
    params = float(encoding.cost(genome, encoding.max_bounds())["executed_params"])
    population = config.search.population_size
    need = population * params * 4 * 2  # float32, device and host copies
    memory = _physical_memory()
    if memory is not None and need > memory / 2:
        raise ValueError(
            f"search.population_size={population} needs about {need / 2**30:,.1f} GiB to "
            f"initialise ({population:,} networks of up to {params:,.0f} parameters at the "
            f"space's largest shapes); this machine has {memory / 2**30:,.1f} GiB: lower "
            "search.population_size (or shrink the space's widest choices)"
        )


def build_table(config: ExperimentConfig) -> Table:
    """The benchmark table of a tabular run, checked against the config's encoding.

    Raises:
        ValueError: the table's encoding is not ``encoding.name``, or ``encoding.options`` are
            set (the table fixes its encoding).
    """
    evaluator = config.evaluator
    name = evaluator.benchmark or config.encoding.name
    table = get_benchmark(name, **evaluator.options)
    have = getattr(table.encoding, "name", None)
    if have != config.encoding.name:
        raise ValueError(f"benchmark {name!r} is a table of the {have!r} encoding, but "
                         f"encoding.name is {config.encoding.name!r}; set encoding.name={have}")
    if config.encoding.options:
        raise ValueError(f"encoding.options {dict(config.encoding.options)} can't be used with a "
                         f"tabular evaluator: benchmark {name!r} fixes its encoding (set its "
                         "options in evaluator.options instead)")
    return table


def _repaired(strategy: Any, config: ExperimentConfig, encoding: Any) -> Feasible:
    """``strategy`` wrapped so that it asks only for architectures within the search's bounds on
    analytic costs (``search.repair``).

    Raises:
        ValueError: no constraint is on a cost the encoding computes (nothing to repair against).
    """
    costs = cost_names(encoding)
    if not any(c.metric in costs for c in config.search.parsed_constraints()):
        example = "params" if "params" in costs else costs[0]
        raise ValueError(
            f"search.repair needs a bound on an analytic cost ({', '.join(costs)}) in "
            f"search.constraints; got {list(config.search.constraints)}: add one, such as "
            f"'{example} <= ...', or remove search.repair")
    return Feasible(strategy, encoding, config.search.parsed_constraints(),
                    config.search.repair.tries)


def build_components(config: ExperimentConfig, trainer: Any = None,
                     dataset: Dataset | None = None) -> Components:
    """Loads the dataset (or the table) and builds the encoding, strategy and evaluator.

    Args:
        config: the experiment.
        trainer: what trains a population (default ``train_population``; a multi-process run's
            shares each call with the other processes).
        dataset: data given in Python (``Dataset.from_arrays``) instead of ``config.dataset``.

    Raises:
        ValueError: any part the config describes can't be built (with the part's message).
    """
    table = None
    if config.evaluator.tabular:
        table = build_table(config)
        dataset, encoding, options = None, table.encoding, {}
    else:
        dataset, encoding, options = build_model_parts(config, dataset)
        check_data_memory(config, dataset)
        check_population_memory(config, encoding)
        check_proxies("evaluator.proxies", config.evaluator.proxies, encoding)
    check_metrics(config, encoding, table)
    check_satisfiable(config, encoding)
    strategy = _strategy(config, encoding)
    train = dataclasses.replace(config.train, plan=runner_plan(config.train.plan))
    cache = ProgramCache(train.max_programs)
    strategy = bind(strategy, encoding=encoding, dataset=dataset, train=train,
                    generations=config.search.generations, cache=cache,
                    key=streams.stream(config.search.seed, "relaxation"),
                    evaluations=config.search.evaluations)
    context = Context(encoding, dataset, table, train, "val_acc", cache, trainer)
    evaluator = build_evaluator(config, context)
    if config.evaluator.prefilter is not None:
        screen = config.evaluator.prefilter
        strategy = Prefilter(strategy, encoding, dataset, screen.proxy, screen.factor, cache)
    if config.search.repair is not None:  # outermost: what a prefilter picks is repaired too
        strategy = _repaired(strategy, config, encoding)
    return Components(dataset, encoding, options, strategy, evaluator, table, cache)
