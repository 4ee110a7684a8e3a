"""Whole searches on a pure evaluator: one ``lax.scan`` over generations, runs vmapped over seeds.

On a tabular benchmark an evaluation is a table lookup, so a search of ``budget`` evaluations is
one compiled program and ``runs`` independent searches are one ``vmap`` of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import numpy as np
from flax import struct

from evonas.strategies.base import Strategy

# (key, genomes int32[B, G]) -> (fitness the strategy sees, true fitness): float32[B], or
# float32[B, M] for a multi-objective strategy (one column per objective).
EvaluateFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


@struct.dataclass
class SearchTrace:
    """Every evaluation of one search, in order: ``observed`` is what the strategy was told."""

    genomes: jax.Array  # int32[Q, G]
    observed: jax.Array  # float32[Q], or float32[Q, M] with M objectives
    true: jax.Array  # float32[Q], or float32[Q, M]


def generations_for(strategy: Strategy, budget: int) -> int:
    """Generations needed for ``budget`` evaluations (the last one may overshoot; it's cut)."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be a positive number of evaluations; got {budget!r}")
    return math.ceil(budget / strategy.batch_size)


def search(strategy: Strategy, evaluate: EvaluateFn, key: jax.Array, budget: int) -> SearchTrace:
    """One whole search of ``budget`` evaluations; pure and jit-able (``strategy`` static).

    Args:
        strategy: any strategy with the init / ask / tell protocol.
        evaluate: a pure ``(key, genomes) -> (observed, true)`` (e.g. a table lookup, with noise
            in ``observed``).
        key: the search's PRNG key.
        budget: number of evaluations.
    """
    generations = generations_for(strategy, budget)

    def generation(state, key):
        k_ask, k_eval = jax.random.split(key)
        genomes, state = strategy.ask(k_ask, state)
        observed, true = evaluate(k_eval, genomes)
        state = strategy.tell(genomes, observed, state)
        return state, (genomes, observed, true)

    k_init, k_run = jax.random.split(key)
    state = strategy.init(k_init)
    _, (genomes, observed, true) = jax.lax.scan(
        generation, state, jax.random.split(k_run, generations)
    )
    flat = lambda x: x.reshape(-1, *x.shape[2:])[:budget]  # [generations, B, ...] -> [Q, ...]
    return SearchTrace(genomes=flat(genomes), observed=flat(observed), true=flat(true))


def selected_true(observed: np.ndarray, true: np.ndarray, maximize: bool = True) -> np.ndarray:
    """The true fitness of the architecture a search would select after each evaluation.

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


def summarize(selected: np.ndarray, optimum: float, checkpoints) -> dict:
    """Final accuracy (mean, std over runs) and mean regret after each of ``checkpoints``.

    Args:
        selected: ``[runs, Q]`` from :func:`selected_true`.
        optimum: the best fitness in the space.
        checkpoints: evaluation counts at which to report regret (those above ``Q`` are skipped).
    """
    final = selected[:, -1]
    return {
        "final_mean": round(float(final.mean()), 4),
        "final_std": round(float(final.std()), 4),
        "regret": {
            str(q): round(float((optimum - selected[:, q - 1]).mean()), 4)
            for q in checkpoints if q <= selected.shape[-1]
        },
    }


def tabular_evaluate(evaluator) -> EvaluateFn:
    """Adapts a :class:`~evonas.evaluators.TabularEvaluator` to ``(observed, true)``."""

    def evaluate(key, genomes):
        results = evaluator.evaluate(key, genomes)
        return results.fitness, results.metrics["test_acc"]

    return evaluate


def run_searches(strategy: Strategy, evaluate: EvaluateFn, key: jax.Array, runs: int,
                 budget: int) -> SearchTrace:
    """``runs`` independent searches, vmapped over seeds in one compiled program."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer; got {runs!r}")
    fn = jax.jit(jax.vmap(lambda k: search(strategy, evaluate, k, budget)))
    return fn(jax.random.split(key, runs))
