"""Whole searches on a pure evaluator, in one compiled program; runs vmapped over seeds.

On a tabular benchmark an evaluation is a table lookup, so a search of ``budget`` evaluations is
one ``lax.scan`` over generations and ``runs`` independent searches are one ``vmap`` of it.

The evaluation contract, ``(key, genomes int32[B, G]) -> (seen, true)``:

* ``seen`` is what the strategy is told: ``float32[B]`` for a single-objective strategy,
  ``float32[B, M]`` for a multi-objective one (one column per objective, in the strategy's
  ``maximize`` order); NaN marks a failed or infeasible evaluation.
* ``true`` is what the benchmark reports about the same genomes, never shown to the strategy:
  ``float32[B]`` (e.g. the test accuracy when ``seen`` is a noisy or validation accuracy) or
  ``float32[B, M']`` (the true values of every objective, for fronts and hypervolume).

The budget counts either every query (``count="queries"``, duplicates included: what a tabular
benchmark paper means by "evaluations") or distinct architectures (``count="unique"``: a genome
seen before, or isomorphic to one seen before under the encoding's ``canonical`` hook, is free,
as it would be with the experiment runner's history cache). The trace says which queries were
counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks, streams
from evonas.objectives.constraints import Constraint, violation
from evonas.operators import genome_hash
from evonas.strategies.base import Strategy, adapt
from evonas.strategies.genetic_algorithm import GeneticAlgorithm

EvaluateFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
"""``(key, genomes int32[B, G]) -> (seen, true)``: see the module docstring."""

COUNTS = ("queries", "unique")
_BITMAP_MAX = 1 << 22  # spaces up to this size track "seen" in a bitmap, larger ones by hashes


@struct.dataclass
class SearchTrace:
    """Every query of one search, in order (leading axes ``[runs]`` from ``run_searches``).

    Attributes:
        genomes: ``int32[Q, G]``.
        observed: ``float32[Q]`` (or ``[Q, M]``): what the strategy was told.
        true: ``float32[Q]`` (or ``[Q, M']``): what the benchmark reports.
        counted: ``bool[Q]``: the query counted against the budget (every query under
            ``count="queries"``; the first of each distinct architecture under
            ``count="unique"``, where rows past the search's end are padding with NaN values).
    """

    genomes: jax.Array
    observed: jax.Array
    true: jax.Array
    counted: jax.Array


def generations_for(strategy: Strategy, budget: int) -> int:
    """Generations needed for ``budget`` queries (the last one may overshoot; it's cut)."""
    checks.positive_int("budget (evaluations)", budget)
    return math.ceil(budget / strategy.batch_size)


def search(strategy: Strategy, evaluate: EvaluateFn, key: jax.Array, budget: int, *,
           count: str = "queries", canonical: Callable[[jax.Array], jax.Array] | None = None,
           max_queries: int | None = None) -> SearchTrace:
    """One whole search; pure and jit-able (``strategy`` static).

    Args:
        strategy: any strategy with the init / ask / tell protocol.
        evaluate: a pure ``(key, genomes) -> (seen, true)`` (module docstring).
        key: the search's PRNG key.
        budget: queries (``count="queries"``) or distinct architectures (``"unique"``).
        count: ``"queries"`` or ``"unique"``.
        canonical: with ``count="unique"``, a jit-able ``genomes -> canonical genomes``
            (``encoding.canonical``); default: genomes are distinct when their genes differ.
        max_queries: with ``count="unique"``, stop after this many queries even if fewer
            distinct architectures were found (default ``20 * budget``): a strategy that has
            converged keeps asking for what it has seen.

    Returns:
        The :class:`SearchTrace`: ``Q = budget`` rows under ``"queries"``, ``Q = max_queries``
        under ``"unique"`` (padded).
    """
    checks.choice("count", count, COUNTS)
    strategy = adapt(strategy)
    if count == "unique":
        return _search_unique(strategy, evaluate, key, budget, canonical, max_queries)
    generations = generations_for(strategy, budget)

    def generation(state, key):
        k_ask, k_eval = streams.split_ask_evaluate(key)
        genomes, state = strategy.ask(k_ask, state)
        observed, true = evaluate(k_eval, genomes)
        state = strategy.tell(streams.within_generation(key, "tell"), genomes, observed, state)
        return state, (genomes, observed, true)

    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init)
    _, (genomes, observed, true) = jax.lax.scan(
        generation, state, jax.random.split(k_run, generations)
    )
    flat = lambda x: x.reshape(-1, *x.shape[2:])[:budget]  # [generations, B, ...] -> [Q, ...]
    return SearchTrace(genomes=flat(genomes), observed=flat(observed), true=flat(true),
                       counted=jnp.ones((budget,), bool))


def _search_unique(strategy: Strategy, evaluate: EvaluateFn, key: jax.Array, budget: int,
                   canonical: Callable[[jax.Array], jax.Array] | None,
                   max_queries: int | None) -> SearchTrace:
    """``count="unique"``: a ``while_loop`` over generations until ``budget`` distinct
    architectures were queried (or ``max_queries`` queries were made)."""
    space, batch = strategy.space, strategy.batch_size
    checks.positive_int("budget (distinct architectures)", budget)
    if budget > space.size:
        raise ValueError(f"budget={budget} distinct architectures exceeds the space's "
                         f"{space.size}; lower it or count queries")
    max_queries = 20 * budget if max_queries is None else checks.positive_int(
        "max_queries", max_queries)
    generations = math.ceil(max(max_queries, budget) / batch)
    rows = generations * batch
    canonical = canonical if canonical is not None else (lambda g: g)
    bitmap = space.size <= _BITMAP_MAX

    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init)
    keys = jax.random.split(k_run, generations)
    probe = jax.eval_shape(lambda k, s: evaluate(k, strategy.ask(k, s)[0]), keys[0], state)
    nan_rows = lambda s: jnp.full((rows, *s.shape[1:]), jnp.nan, s.dtype)
    seen = jnp.zeros((space.size,), bool) if bitmap else jnp.zeros((rows, 2), jnp.uint32)
    carry = (state, jnp.int32(0), jnp.int32(0), seen,
             jnp.zeros((rows, space.num_genes), jnp.int32), nan_rows(probe[0]),
             nan_rows(probe[1]), jnp.zeros((rows,), bool))

    def running(carry):
        _, generation, unique, *_ = carry
        return (unique < budget) & (generation < generations)

    def step(carry):
        state, generation, unique, seen, g_buf, o_buf, t_buf, c_buf = carry
        k_ask, k_eval = streams.split_ask_evaluate(keys[generation])
        genomes, state = strategy.ask(k_ask, state)
        observed, true = evaluate(k_eval, genomes)
        state = strategy.tell(streams.within_generation(keys[generation], "tell"), genomes,
                              observed, state)
        canon = canonical(genomes)
        same = jnp.all(canon[:, None, :] == canon[None, :, :], axis=-1)
        first_in_batch = ~jnp.any(jnp.tril(same, k=-1), axis=1)
        if bitmap:
            ranks = space.rank(space.clip(canon))
            new = first_in_batch & ~seen[ranks]
            seen = seen.at[ranks].set(True)
        else:
            hashes = genome_hash(canon)
            filled = jnp.arange(rows) < generation * batch
            before = jnp.any(jnp.all(hashes[:, None, :] == seen[None, :, :], axis=-1)
                             & filled[None, :], axis=1)
            new = first_in_batch & ~before
            seen = jax.lax.dynamic_update_slice(seen, hashes, (generation * batch, 0))
        counted = new & (unique + jnp.cumsum(new) <= budget)
        at = generation * batch
        put = lambda buf, x: jax.lax.dynamic_update_slice(
            buf, x.astype(buf.dtype), (at,) + (0,) * (buf.ndim - 1))
        return (state, generation + 1, unique + jnp.sum(counted, dtype=jnp.int32), seen,
                put(g_buf, genomes), put(o_buf, observed), put(t_buf, true),
                put(c_buf, counted))

    *_, genomes, observed, true, counted = jax.lax.while_loop(running, step, carry)
    return SearchTrace(genomes=genomes, observed=observed, true=true, counted=counted)


def run_searches(strategy: Strategy, evaluate: EvaluateFn, key: jax.Array, runs: int,
                 budget: int, *, count: str = "queries",
                 canonical: Callable[[jax.Array], jax.Array] | None = None,
                 max_queries: int | None = None,
                 devices: Sequence[Any] | None = None) -> SearchTrace:
    """``runs`` independent searches, vmapped over seeds in one compiled program.

    The runs axis is sharded over ``devices``: by default one device, or, in a multi-process
    run (``jax.process_count() > 1``, every process calling this with the same arguments),
    every process's devices, each computing its share of the runs. A run count that does not
    divide is padded with copies of run 0, which are dropped. The traces are the same however
    the runs are placed.

    Args: as :func:`search`, plus ``runs``, the number of independent searches (run ``r`` uses
    ``jax.random.split(key, runs)[r]``), and ``devices``.

    Returns:
        A :class:`SearchTrace` with a leading ``[runs]`` axis (on every process).
    """
    checks.positive_int("runs", runs)
    fn = jax.jit(jax.vmap(lambda k: search(strategy, evaluate, k, budget, count=count,
                                           canonical=canonical, max_queries=max_queries)))
    keys = jax.random.split(key, runs)
    if devices is None and jax.process_count() > 1:
        devices = jax.devices()
    if devices is None or len(devices) == 1:
        return fn(keys)
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    n = len(devices)
    padded = -(-runs // n) * n
    data = np.asarray(jax.random.key_data(keys))
    data = np.concatenate([data, np.repeat(data[:1], padded - runs, axis=0)])
    sharding = NamedSharding(Mesh(np.asarray(devices), ("runs",)), PartitionSpec("runs"))
    placed = jax.device_put(data, sharding)  # every process passes the same host keys
    trace = fn(jax.random.wrap_key_data(placed))
    if not all(d.process_index == jax.process_index() for d in devices):
        trace = multihost_utils.process_allgather(trace, tiled=True)
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a)[:runs]), trace)


# -- reading traces ---------------------------------------------------------------------------


def selected_true(observed: np.ndarray, true: np.ndarray, maximize: bool = True) -> np.ndarray:
    """The true fitness of the architecture a search would select after each query.

    The selected architecture is the best *observed* so far (the first on ties; NaN never), so
    with noisy fitness the curve shows what the user would really get. Works on ``[..., Q]``.
    """
    observed = np.asarray(observed, np.float64)
    observed = np.where(np.isnan(observed), -np.inf, observed if maximize else -observed)
    q = observed.shape[-1]
    best = np.maximum.accumulate(observed, axis=-1)
    before = np.concatenate(
        [np.full(observed.shape[:-1] + (1,), -np.inf), best[..., :-1]], axis=-1
    )
    pointer = np.maximum.accumulate(np.where(observed > before, np.arange(q), 0), axis=-1)
    return np.take_along_axis(np.asarray(true), pointer, axis=-1)


def at_counts(selected: np.ndarray, counted: np.ndarray, checkpoints: Sequence[int]
              ) -> dict[int, np.ndarray]:
    """``selected`` (``[runs, Q]``) after the ``q``-th counted query of each run, per checkpoint
    ``q`` that every run reached (under ``count="queries"`` that is column ``q - 1``)."""
    counted = np.asarray(counted, bool)
    total = np.cumsum(counted, axis=-1)
    out = {}
    for q in checkpoints:
        reached = total[..., -1] >= q
        if not np.all(reached):
            continue
        position = np.argmax(total >= q, axis=-1)
        out[q] = np.take_along_axis(selected, position[..., None], axis=-1)[..., 0]
    return out


def summarize(selected: np.ndarray, optimum: float, checkpoints: Sequence[int],
              counted: np.ndarray | None = None) -> dict[str, Any]:
    """Final accuracy (mean, std over runs) and mean regret after each of ``checkpoints``.

    Args:
        selected: ``[runs, Q]`` from :func:`selected_true`.
        optimum: the best true fitness in the space.
        checkpoints: budgets at which to report regret (those not reached are skipped).
        counted: ``SearchTrace.counted`` (default: every query counted).
    """
    counted = np.ones(selected.shape, bool) if counted is None else np.asarray(counted, bool)
    by_count = at_counts(selected, counted, checkpoints)
    last = int(counted.sum(axis=-1).min())
    final = at_counts(selected, counted, [last])[last] if last else selected[:, -1]
    return {
        "final_mean": round(float(final.mean()), 4),
        "final_std": round(float(final.std()), 4),
        "regret": {str(q): round(float((optimum - v).mean()), 4) for q, v in by_count.items()},
    }


# -- searching a space for feasibility --------------------------------------------------------


def closest_to_feasible(encoding: Any, constraints: Sequence[Constraint], key: jax.Array,
                        samples: int = 4096, evaluations: int = 4096
                        ) -> tuple[np.ndarray, dict[str, float], float]:
    """The architecture of ``encoding`` that best meets cost ``constraints``, and its costs.

    ``samples`` random genomes, then (only if none of them is feasible) a genetic algorithm of
    ``evaluations`` evaluations that minimises :func:`~evonas.objectives.violation`: a feasible
    architecture that random sampling misses (a corner of the space) is still found. Everything
    is jitted; the costs are the encoding's analytic ``cost``.

    Returns:
        ``(genome, costs, violation)``: violation 0 means the constraints can be met.
    """
    cost = jax.vmap(encoding.cost)
    k_sample, k_search = jax.random.split(key)

    def measure(genomes):
        return violation(constraints, cost(genomes))

    genomes = encoding.space.sample(k_sample, samples)
    scores = jax.jit(measure)(genomes)
    if float(jnp.min(scores)) > 0.0:
        ga = GeneticAlgorithm(encoding.space, population_size=64, maximize=False)
        trace = jax.jit(lambda k: search(ga, lambda _, g: (measure(g), measure(g)), k,
                                         evaluations))(k_search)
        genomes = jnp.concatenate([genomes, trace.genomes])
        scores = jnp.concatenate([scores, trace.observed])
    best = int(jnp.argmin(scores))
    values = {k: float(v[best]) for k, v in cost(genomes[best:best + 1]).items()}
    return np.asarray(genomes[best]), values, float(scores[best])
