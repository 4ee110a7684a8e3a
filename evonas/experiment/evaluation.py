"""The evaluator of an experiment, composed from its config: a base evaluator (training, a table,
a one-shot supernet, or a registered plug-in) and the wrappers its config turns on.

:data:`WRAPPERS` is the one table of wrappers, innermost first; each row says how the config turns
it on (None: it is off). Adding a cheap estimator is a module in ``evonas.evaluators``, one row
here and its section in ``EvaluatorConfig``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evonas.evaluators import (
    Constrain,
    Context,
    Costs,
    Inherit,
    Latency,
    LatencyMeter,
    Proxies,
    SuccessiveHalving,
    get_evaluator,
)
from evonas.experiment.config import ExperimentConfig
from evonas.genomes.encoding import cost_names
from evonas.objectives.constraints import Constraint
from evonas.objectives.metrics import MEASURED_METRICS, PROXY_METRICS

Wrap = Callable[[Any, ExperimentConfig, Context], Any]


def before_evaluation(config: ExperimentConfig, context: Context) -> set[str]:
    """The metrics measured before an architecture is evaluated: its analytic costs, latency and
    the proxies (constraints on them keep an architecture from being trained); a column of the
    run's table is read with the evaluation, not before it."""
    table = context.table
    columns = set(table.searchable) if table is not None else set()
    return {*cost_names(context.encoding), *MEASURED_METRICS, *PROXY_METRICS} - columns


def _on(config: ExperimentConfig, names: set[str] | tuple[str, ...]) -> list[Constraint]:
    return [c for c in config.search.parsed_constraints() if c.metric in names]


def _halving(inner: Any, config: ExperimentConfig, context: Context) -> Any:
    section = config.evaluator.halving
    return None if section is None else SuccessiveHalving(inner, section.rungs, section.eta)


def _inherit(inner: Any, config: ExperimentConfig, context: Context) -> Any:
    section = config.evaluator.inherit
    return None if section is None else Inherit(inner, section.steps)


def _constraints(inner: Any, config: ExperimentConfig, context: Context) -> Any:
    after = [c for c in config.search.parsed_constraints()
             if c.metric not in before_evaluation(config, context)]
    return Constrain(inner, after) if after else None


def _proxies(inner: Any, config: ExperimentConfig, context: Context) -> Any:
    names = config.evaluator.proxies
    if not names:
        return None
    return Proxies(inner, context.encoding, context.dataset, names, _on(config, set(names)),
                   cache=context.cache)


def _latency(inner: Any, config: ExperimentConfig, context: Context) -> Any:
    """Measures ``latency`` (ms per batch) on this device, unless the run's table has a column
    of that name (then it is the table's measurement, read like any other)."""
    wanted = {o.name for o in config.search.objectives} | {
        c.metric for c in config.search.parsed_constraints()}
    table = context.table
    if "latency" not in wanted or (table is not None and "latency" in table.searchable):
        return None
    section = config.evaluator.latency
    meter = LatencyMeter(context.encoding, section.batch_size, section.repeats, section.warmup)
    return Latency(inner, meter, _on(config, ("latency",)))


def _costs(inner: Any, config: ExperimentConfig, context: Context) -> Any:
    return Costs(inner, context.encoding, _on(config, set(cost_names(context.encoding))))


# The wrappers an experiment composes, innermost first.
WRAPPERS: dict[str, Wrap] = {
    "halving": _halving,  # changes how the base evaluator trains
    "inherit": _inherit,
    "constraints": _constraints,  # bounds on what was measured, after the evaluation
    "proxies": _proxies,  # zero-cost scores, before it
    "latency": _latency,
    "costs": _costs,  # the analytic costs, first of all
}


def base_options(config: ExperimentConfig) -> dict[str, Any]:
    """The options of the base evaluator's factory that the config gives."""
    section = config.evaluator
    if section.name == "tabular":
        return {"noise": section.noise}
    if section.name == "oneshot":
        return {"supernet_steps": section.supernet_steps}
    if section.name == "few_shot":
        return {"supernet_steps": section.supernet_steps, **section.options}
    if section.name == "training":
        return {}
    return dict(section.options)  # a plug-in's


def build_evaluator(config: ExperimentConfig, context: Context) -> Any:
    """The experiment's evaluator: the base evaluator ``evaluator.name`` wrapped in every
    wrapper of :data:`WRAPPERS` the config turns on."""
    evaluator = get_evaluator(config.evaluator.name, context, **base_options(config))
    for wrap in WRAPPERS.values():
        evaluator = wrap(evaluator, config, context) or evaluator
    return evaluator
