"""``bench``: many whole searches of one strategy on a tabular benchmark, summarised.

What ``evonas bench NAME`` prints, for any registered benchmark (NAS-Bench-201 or a plug-in's
table): ``runs`` searches of ``budget`` evaluations each, vmapped over seeds in one compiled
program; the regret of what each search would select (single objective), or the hypervolume gap
of the front it found to the table's true front (with ``objectives``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.benchmarks import get_benchmark
from evonas.evaluators import TabularEvaluator
from evonas.objectives import hypervolume, pareto_front
from evonas.strategies import (
    get_strategy,
    num_objectives,
    run_searches,
    selected_true,
    summarize,
)

CHECKPOINTS = (10, 30, 100, 300, 1000, 3000, 10000)


def _canonical(encoding: Any, count: str) -> Any:
    return getattr(encoding, "canonical", None) if count == "unique" else None


def bench(benchmark: str, strategy: str = "regularized_evolution", *, runs: int = 10,
          budget: int = 300, seed: int = 0, noise: float = 0.0,
          objectives: Sequence[str] = (), constraints: Sequence[str] = (),
          params: Mapping[str, Any] | None = None, options: Mapping[str, Any] | None = None,
          count: str = "queries") -> dict[str, Any]:
    """Searches the table of ``benchmark`` ``runs`` times with ``strategy``.

    Args:
        benchmark: a registered benchmark (``evonas list``).
        strategy: a registered strategy.
        runs: independent searches (vmapped).
        budget: evaluations per search (queries, or distinct architectures: ``count``).
        seed: the key of the whole benchmark.
        noise: Gaussian noise on the fitness a strategy sees.
        objectives: table costs to minimise beside the fitness (multi-objective).
        constraints: hard limits (``"edgegpu_latency <= 5 ms"``).
        params: the strategy's parameters.
        options: the benchmark's options (NAS-Bench-201: ``dataset``).
        count: ``"queries"`` (every query counts) or ``"unique"`` (distinct architectures, by
            the encoding's ``canonical`` hook when it has one).

    Returns:
        A JSON-ready summary: the protocol, the optimum, the regret at checkpoints and the
        best architecture found (single objective), or hypervolume gaps and the first run's
        front (with objectives).
    """
    checks.positive_int("--runs", runs)
    checks.positive_int("--budget", budget)
    table = get_benchmark(benchmark, **dict(options or {}))
    evaluator = TabularEvaluator(table, objectives=objectives, noise=noise,
                                 constraints=constraints)
    head = {"benchmark": table.name, "protocol": evaluator.protocol, **dict(options or {}),
            "strategy": strategy, "runs": runs, "budget": budget, "count": count,
            "canonical": _canonical(table.encoding, count) is not None}
    if objectives:
        return {**head, **_multiobjective(evaluator, strategy, dict(params or {}), runs, budget,
                                           seed, count, constraints)}
    space = table.space
    searcher = get_strategy(strategy, space, maximize=table.maximize, **dict(params or {}))
    trace = run_searches(searcher, evaluator.search_fn(), jax.random.key(seed), runs, budget,
                         count=count, canonical=_canonical(table.encoding, count))
    observed, true = np.asarray(trace.observed), np.asarray(trace.true)
    selected = selected_true(observed, true, table.maximize)
    optimum = table.optimum()
    summary = summarize(selected if table.maximize else -selected,
                        optimum if table.maximize else -optimum, CHECKPOINTS,
                        np.asarray(trace.counted))
    if not table.maximize:  # report values in the table's units, regret as a positive gap
        summary["final_mean"] = -summary["final_mean"]
    best_run = int(np.argmax(selected[:, -1] if table.maximize else -selected[:, -1]))
    scores = np.where(np.isnan(observed[best_run]), -np.inf,
                      observed[best_run] if table.maximize else -observed[best_run])
    best_genome = np.asarray(trace.genomes[best_run, int(np.argmax(scores))])
    return {
        **head, "noise": noise, "optimum": round(optimum, 4), **summary,
        "best": {
            "genome": best_genome.tolist(),
            "description": table.encoding.describe(best_genome),
            "row": int(table.rows(jnp.asarray(best_genome))),
            table.truth: round(float(selected[best_run, -1]), 4),
        },
    }


def _multiobjective(evaluator: TabularEvaluator, strategy: str, params: dict[str, Any],
                    runs: int, budget: int, seed: int, count: str,
                    constraints: Sequence[str]) -> dict[str, Any]:
    """Fitness against table costs: hypervolume gaps to the table's true front (feasible
    architectures only) and the front the first run found."""
    table = evaluator.table
    maximize = (table.maximize,) + (False,) * len(evaluator.objectives)
    probe = get_strategy(strategy, table.space, **params)
    multi = num_objectives(probe) > 1
    searcher = get_strategy(strategy, table.space, maximize=maximize if multi else
                            table.maximize, **params)
    search_fn = evaluator.search_fn(num_objectives(searcher))
    trace = run_searches(searcher, search_fn, jax.random.key(seed), runs, budget, count=count,
                         canonical=_canonical(table.encoding, count))
    everything = jnp.asarray(table.all_genomes(), jnp.int32)
    every = np.asarray(jax.jit(search_fn)(jax.random.key(0), everything)[1], np.float64)
    feasible = ~np.isnan(every).any(axis=1)
    if not feasible.any():
        raise ValueError(f"no architecture of the table meets {list(constraints)}")
    reference = np.where(maximize, every[feasible].min(0), every[feasible].max(0))
    best = hypervolume(every, reference, maximize)
    found = np.asarray(trace.true, np.float64)
    counted = np.cumsum(np.asarray(trace.counted), axis=-1)
    reached = int(counted[:, -1].min())
    gaps: dict[str, float | None] = {}
    for q in (q for q in CHECKPOINTS if q <= min(budget, reached)):
        if best <= 0.0:  # one feasible architecture, or a front of one point: no volume
            gaps[str(q)] = None
            continue
        ends = np.argmax(counted >= q, axis=-1) + 1
        gaps[str(q)] = round(float(np.mean([
            1 - hypervolume(found[r, :ends[r]], reference, maximize) / best
            for r in range(runs)])), 5)
    front = pareto_front(found[0], maximize)
    # One member per architecture: per class of isomorphic genomes when counting unique ones.
    canonical = _canonical(table.encoding, count)
    keys = np.asarray(trace.genomes[0])[front]
    if canonical is not None and len(keys):
        keys = np.asarray(canonical(jnp.asarray(keys, jnp.int32)))
    _, first = np.unique(keys, axis=0, return_index=True)
    names = [table.truth, *evaluator.objectives]
    members = sorted(
        ({"genome": np.asarray(trace.genomes[0, i]).tolist(),
          "description": table.encoding.describe(np.asarray(trace.genomes[0, i])),
          **{n: round(float(found[0, i, j]), 4) for j, n in enumerate(names)}}
         for i in front[np.sort(first)]),
        key=lambda m: -m[names[0]] if table.maximize else m[names[0]])
    return {"objectives": names, "constraints": list(constraints),
            "true_front_size": int(len(pareto_front(every, maximize))), "hv_gap": gaps,
            "front_of_run_0": members}
