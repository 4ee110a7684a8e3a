"""``Inherit``: weight inheritance (Real et al. 2017, "Large-Scale Evolution of Image
Classifiers"): a child starts from its first parent's trained parameters and trains a shorter
budget.

Every architecture the wrapper trains keeps its parameters in a parameter store (the run
directory's ``weights/``, by genome key, written before the generation commits, so a resumed run
finds every parent). A child whose first parent was kept starts from the parent's values wherever
their architectures share the max-bounds layout (new units start as usual) and trains
``steps``; the others train the full budget. The history records ``inherited`` as the child's
estimate and its steps as its fidelity.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from evonas import checks
from evonas.evaluators.base import Results, Wrapper, describe_estimate, merge
from evonas.genomes import canonical_genomes
from evonas.store import ParamStore, genome_key


def child_steps(steps: int, steps_per_call: int, inherit_steps: int | None) -> int:
    """Steps of a child that inherits: ``inherit_steps``, or a quarter of ``steps`` (rounded to
    ``steps_per_call``, at least one call)."""
    if inherit_steps is not None:
        return inherit_steps
    return max(steps_per_call, steps // 4 // steps_per_call * steps_per_call)


class Inherit(Wrapper):
    """Weight inheritance around a :class:`~evonas.evaluators.TrainingEvaluator` (module
    docstring).

    Args:
        inner: the training evaluator (its ``train``, ``param_shapes`` and ``config``).
        steps: optimiser steps of a child that inherits (default a quarter of the full
            budget, a multiple of ``steps_per_call``); at most the full budget.
        store: where trained parameters are kept (set by :meth:`attach`: the run directory's
            ``weights/``).
    """

    uses_parents = True

    def __init__(self, inner: Any, steps: int | None = None, store: ParamStore | None = None):
        super().__init__(inner)
        if not hasattr(inner, "train") or not hasattr(inner, "param_shapes"):
            raise ValueError(f"weight inheritance trains the architectures itself: it wraps a "
                             f"training evaluator, not {type(inner).__name__}")
        config = inner.config
        if steps is not None:
            checks.integer("evaluator.inherit.steps", steps, 1, config.steps)
            if steps % config.steps_per_call:
                raise ValueError(f"evaluator.inherit.steps={steps} must be a multiple of "
                                 f"train.steps_per_call={config.steps_per_call}")
        self.child_steps = child_steps(config.steps, config.steps_per_call, steps)
        self.store = store
        self._shapes = None

    def attach(self, root: Any, key: jax.Array) -> None:
        super().attach(root, key)
        self.store = ParamStore(root.weights, root.root)

    def _starts(self, parents: list[list[str]]) -> Any:
        """Each genome's first parent's kept parameters (leaves ``[B, ...]``), NaN for a genome
        with no parent or none kept (it starts as usual)."""
        if self._shapes is None:
            self._shapes = self.inner.param_shapes()
        like = self._shapes
        start = jax.tree.map(lambda s: np.full((len(parents), *s.shape[1:]), np.nan, s.dtype),
                             like)
        for i, keys in enumerate(parents):
            kept = self.store.load(keys[0], like) if keys and self.store is not None else None
            if kept is not None:
                for out, leaf in zip(jax.tree.leaves(start), jax.tree.leaves(kept)):
                    out[i] = leaf[0]
        return start

    def evaluate(self, key: jax.Array, genomes: jax.Array,
                 parents: list[list[str]] | None = None) -> Results:
        """Trains ``genomes``: those whose first parent was kept from ``fold_in(key, 1)`` for
        the child's steps, starting from the parent's parameters; the others from ``key`` for
        the full budget. ``parents`` are each genome's parents' history keys (the first
        parent first)."""
        genomes = np.asarray(genomes, np.int32)
        start = self._starts(parents or [[] for _ in genomes])
        inherits = np.any([~np.isnan(leaf).all(axis=tuple(range(1, np.ndim(leaf))))
                           for leaf in jax.tree.leaves(start)], axis=0)
        parts = []
        fresh, children = np.flatnonzero(~inherits), np.flatnonzero(inherits)
        if len(fresh):
            part = self.inner.train(key, genomes[fresh], keep_params=True)
            parts.append((fresh, part.replace(estimate=(describe_estimate(self.inner),)
                                              * len(fresh))))
        if len(children):
            part = self.inner.train(
                jax.random.fold_in(key, 1), genomes[children], steps=self.child_steps,
                keep_params=True, start=jax.tree.map(lambda a: np.asarray(a)[children], start))
            parts.append((children, part.replace(estimate=("inherited",) * len(children))))
        results = merge(len(genomes), parts, describe_estimate(self.inner))
        self._keep(genomes, results)
        return results.replace(params=None)

    def _keep(self, genomes: np.ndarray, results: Results) -> None:
        """Writes every successfully trained architecture's parameters to the store under its
        history key (before the generation commits: a resumed run finds every parent)."""
        if self.store is None or results.params is None:
            return
        keys = [genome_key(g) for g in canonical_genomes(self.inner.encoding, genomes)]
        failed = np.asarray(results.failed)
        for j, key in enumerate(keys):
            if not failed[j]:
                self.store.save(key, jax.tree.map(lambda a, j=j: a[j:j + 1], results.params))
