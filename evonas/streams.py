"""Every stream of random numbers an experiment draws, in one table.

Each use of randomness gets its own id, folded into the key it derives from, so adding a use
never shifts another's numbers and two uses never share one by accident. Three levels:

* :data:`EXPERIMENT`: folded into ``jax.random.key(search.seed)``;
* :data:`GENERATION`: folded into one generation's key, ``fold_in(stream(seed, "search"),
  generation)``, whose ``split`` gives the ``ask`` and ``evaluate`` keys (the whole searches of
  ``evonas.strategies.search`` derive theirs the same way);
* :data:`FINAL`: folded into the final stage's key (pruning's fine-tuning). Run directories
  written before an architecture's retraining had its own stream (fingerprint version < 3)
  retrained the ``r``-th of the top k from ``fold_in(final, r)``, a front member from
  ``fold_in(front, id)`` and a budget's choice from ``fold_in(budgets, id)``; they still do.
"""

from __future__ import annotations

import jax

EXPERIMENT: dict[str, int] = {
    "strategy_init": 0,  # strategy.init
    "search": 1,  # the generations
    "final": 2,  # the final stage: retraining, ensemble, distillation, pruning
    "front": 3,  # a multi-objective run's front: member ``id`` retrains from fold_in(front, id)
    "supernet": 4,  # the one-shot evaluator's supernet
    "budgets": 5,  # `evonas front --budget` of runs before retrain: fold_in(budgets, id)
    "retrain": 6,  # architecture ``id`` retrains from fold_in(retrain, id): final, front, budgets
    "satisfiable": 7,  # the check that constraints on analytic costs can be met
    "relaxation": 9,  # a differentiable search's halves of the training split
}
GENERATION: dict[str, int] = {
    "tell": 8,  # strategy.tell (7 was the zero-cost prefilter's before it screened in ask)
}
FINAL: dict[str, int] = {
    "prune": 5,  # the pruned network's fine-tuning
    "finetune": 6,  # `evonas finetune`: a found network on new data (and its scratch baseline)
}


def _fold(key: jax.Array, table: dict[str, int], name: str) -> jax.Array:
    try:
        return jax.random.fold_in(key, table[name])
    except KeyError:
        raise ValueError(f"no random stream {name!r}; the streams are {sorted(table)}") from None


def stream(seed: int | jax.Array, name: str) -> jax.Array:
    """The key of the experiment-level stream ``name`` (:data:`EXPERIMENT`) of ``seed`` (an
    integer seed or the seed's key)."""
    key = jax.random.key(seed) if isinstance(seed, int) else seed
    return _fold(key, EXPERIMENT, name)


def generation_keys(search: jax.Array, generation: int | jax.Array
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(ask, evaluate, tell)`` keys of ``generation``, from the search stream's key."""
    key = jax.random.fold_in(search, generation)
    return (*split_ask_evaluate(key), _fold(key, GENERATION, "tell"))


def split_ask_evaluate(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One generation's ``ask`` and ``evaluate`` keys from its key."""
    k_ask, k_eval = jax.random.split(key)
    return k_ask, k_eval


def within_generation(key: jax.Array, name: str) -> jax.Array:
    """A generation's sub-stream ``name`` (:data:`GENERATION`), from the generation's key."""
    return _fold(key, GENERATION, name)


def within_final(key: jax.Array, name: str) -> jax.Array:
    """A sub-stream of the final stage (:data:`FINAL`), from its key."""
    return _fold(key, FINAL, name)
