"""Accuracy against measured latency on NAS-Bench-201: how much of the true front a search finds.

Protocol: **oracle tabular**. Each search sees two objectives per architecture, the table's test
accuracy on a dataset (maximised) and HW-NAS-Bench's measured latency on a device (minimised), for
every dataset x device pair (3 x 6). ``hv_gap[q]`` = 1 - (hypervolume of the non-dominated set of
the first ``q`` evaluations) / (hypervolume of the table's true front), mean over runs, with the
reference point at the table's worst accuracy and worst latency (of that dataset and device).
edgetpu has no measurement for some architectures: those are infeasible (NaN) for every strategy
and left out of the true front.

Strategies, each with its own hyper-parameters for a 1,000-evaluation search:

- ``random_search``: uniform genomes (the baseline the issue quotes);
- ``nsga2``: NSGA-II (Deb et al. 2002) on both objectives;
- ``weighted_sum``: regularized evolution on ``accuracy - latency``, both scaled to [0, 1] by
  the pair's range in the table: the scalarisation users try first;
- ``map_elites``: MAP-Elites (Mouret & Clune 2015) keeping the most accurate architecture in
  each tenth of the pair's latency range.

R runs of all 18 pairs are one vmapped program per strategy (the table's columns are arguments,
so one compile serves every pair; the strategies are built inside it); hypervolumes are computed
on the host with the library's exact ``evonas.hypervolume``.

    python benchmarks/nb201_multiobjective.py --runs 100 --budget 1000

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from evonas.benchmarks.nb201 import DATASETS, DEVICES, load_table
from evonas.genomes import get_encoding
from evonas.objectives import hypervolume, pareto_front
from evonas.strategies import get_strategy, search

CHECKPOINTS = (100, 300, 1000)
STRATEGIES = ("random_search", "nsga2", "weighted_sum", "map_elites")
MAXIMIZE = (True, False)  # accuracy up, latency down


def _log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def pairs() -> list[tuple[int, int]]:
    """Every (dataset, device) index pair, datasets outermost."""
    return [(d, v) for d in range(len(DATASETS)) for v in range(len(DEVICES))]


def columns(table) -> tuple[np.ndarray, np.ndarray]:
    """``acc[P, N]`` and ``lat[P, N]`` for the pairs (P = 18), NaN latency kept."""
    acc = np.stack([table.test_acc[d] for d, _ in pairs()]).astype(np.float32)
    lat = np.stack([table.latency[d, v] for d, v in pairs()]).astype(np.float32)
    return acc, lat


def make_strategy(name: str, space, table, norm_lat: jax.Array):
    """The strategy ``name`` for one (dataset, device) pair.

    ``norm_lat`` is the pair's latency column scaled to [0, 1] (a traced array: strategies are
    built inside the vmapped program). The weighted sum sees both objectives scaled to [0, 1] per
    pair, so equal weights are a fair first try; MAP-Elites bins that scaled latency in tenths.
    """
    if name == "random_search":
        return get_strategy(name, space, batch_size=20)
    if name == "nsga2":
        return get_strategy(name, space, population_size=50, maximize=MAXIMIZE)
    if name == "weighted_sum":
        return get_strategy(name, space, strategy="regularized_evolution", weights=(1.0, 1.0),
                            maximize=MAXIMIZE, strategy_params={
                                "population_size": 20, "sample_size": 5, "batch_size": 10})
    if name == "map_elites":
        edges = tuple(float(e) for e in np.linspace(0.1, 0.9, 9))
        return get_strategy(
            name, space, batch_size=20, bins=(edges,), maximize=True,
            descriptors=lambda genomes: norm_lat[table.indices(genomes)][:, None])
    raise ValueError(f"unknown strategy {name!r}; allowed: {list(STRATEGIES)}")


def search_fn(name: str, space, table, budget: int):
    """``(keys[R, P], acc[P, N], lat[P, N]) -> true[R, P, Q, 2]``: every run of every pair.

    What a strategy is told: both objectives for NSGA-II, both scaled to [0, 1] for the weighted
    sum, the accuracy alone for random search and MAP-Elites (which bins the latency). What is
    recorded is always the true (accuracy, latency); NaN where the table has no latency.
    """

    def run(key, acc, lat):
        lo_a, hi_a = jnp.nanmin(acc), jnp.nanmax(acc)
        lo_l, hi_l = jnp.nanmin(lat), jnp.nanmax(lat)
        norm_lat = (lat - lo_l) / (hi_l - lo_l)
        strategy = make_strategy(name, space, table, norm_lat)

        def evaluate(_, genomes):
            index = table.indices(genomes)
            true = jnp.stack([acc[index], lat[index]], axis=-1)
            true = jnp.where(jnp.isnan(true).any(-1, keepdims=True), jnp.nan, true)
            if name == "weighted_sum":
                seen = jnp.stack([(acc[index] - lo_a) / (hi_a - lo_a), norm_lat[index]], -1)
                seen = jnp.where(jnp.isnan(true), jnp.nan, seen)
            elif name in ("random_search", "map_elites"):
                seen = true[:, 0]
            else:
                seen = true
            return seen, true

        return search(strategy, evaluate, key, budget).true

    return jax.jit(jax.vmap(jax.vmap(run, in_axes=(0, 0, 0)), in_axes=(0, None, None)))


def true_front_volumes(acc: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair: the reference point (worst accuracy, worst latency) and the true front's
    hypervolume."""
    refs, volumes = [], []
    for a, lt in zip(acc, lat):
        points = np.stack([a, lt], axis=1).astype(np.float64)
        ok = ~np.isnan(points).any(axis=1)
        ref = np.array([points[ok, 0].min(), points[ok, 1].max()])
        refs.append(ref)
        volumes.append(hypervolume(points, ref, MAXIMIZE))
    return np.asarray(refs), np.asarray(volumes)


def hv_gaps(observed: np.ndarray, refs: np.ndarray, volumes: np.ndarray,
            checkpoints: list[int]) -> dict[str, dict[str, float]]:
    """Mean ``hv_gap`` per pair and checkpoint from ``observed[R, P, Q, 2]``."""
    out = {}
    for p, (d, v) in enumerate(pairs()):
        gaps = {}
        for q in checkpoints:
            hv = [hypervolume(observed[r, p, :q].astype(np.float64), refs[p], MAXIMIZE)
                  for r in range(observed.shape[0])]
            gaps[str(q)] = round(float(np.mean(1.0 - np.asarray(hv) / volumes[p])), 5)
        out[f"{DATASETS[d]}_{DEVICES[v]}"] = gaps
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args(argv)
    jax.config.update("jax_threefry_partitionable", False)
    start = time.perf_counter()
    table = load_table()
    space = get_encoding("nb201").space
    acc, lat = columns(table)
    refs, volumes = true_front_volumes(acc, lat)
    checkpoints = [q for q in CHECKPOINTS if q <= args.budget] or [args.budget]
    keys = jax.random.split(jax.random.key(args.seed), args.runs * len(pairs()))
    keys = keys.reshape(args.runs, len(pairs()))
    results = {}
    for name in args.strategies.split(","):
        t = time.perf_counter()
        fn = search_fn(name, space, table, args.budget)
        observed = np.asarray(fn(keys, jnp.asarray(acc), jnp.asarray(lat)))
        searched = time.perf_counter() - t
        results[name] = hv_gaps(observed, refs, volumes, checkpoints)
        front_sizes = [len(pareto_front(observed[r, 0], MAXIMIZE)) for r in range(args.runs)]
        _log(f"{name}: {searched:.1f} s search, {time.perf_counter() - t - searched:.1f} s "
             f"hypervolumes; cifar10_edgegpu hv_gap {results[name]['cifar10_edgegpu']}, "
             f"mean front size {np.mean(front_sizes):.1f}")
    out = {"benchmark": "nb201_multiobjective", "protocol": "oracle tabular",
           "runs": args.runs, "budget": args.budget,
           "wall_s": round(time.perf_counter() - start, 1), "results": results}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
