"""``TrainingEvaluator``: fitness by training every genome of a population (``evonas.train``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.evaluators.base import Results
from evonas.genomes.encoding import check_trainable
from evonas.objectives import metrics as metric_table
from evonas.train import PopulationResult, ProgramCache, TrainConfig, train_population
from evonas.train.result import merge_results


class TrainingEvaluator:
    """Trains each genome with ``evonas.train.train_population`` and scores it on validation.

    Compiled programs are kept across generations (one :class:`~evonas.train.ProgramCache` per
    evaluator), so a search that revisits shapes does not compile them again.

    Args:
        encoding: a trainable encoding.
        dataset: an ``evonas.data.Dataset``.
        config: the training configuration (``TrainConfig()`` by default).
        fitness: the metric returned as fitness, e.g. ``"val_acc"`` (maximised) or
            ``"val_loss"`` (minimised); NaN for failed individuals.

    Attributes:
        last_result: the :class:`~evonas.train.PopulationResult` of the latest ``evaluate``
            (plan, groups, compiles, seconds), for logs and benchmarks.
    """

    protocol = "training"
    estimate = "trained"

    def __init__(self, encoding: Any, dataset: Any, config: TrainConfig | None = None,
                 fitness: str = "val_acc"):
        check_trainable(encoding, require_build=False)
        config = config if config is not None else TrainConfig()
        allowed = list(metric_table.TRAINED_METRICS)
        if config.evaluate_test:
            allowed += list(metric_table.TEST_METRICS)
        checks.choice("TrainingEvaluator.fitness", fitness, allowed)
        self.encoding = encoding
        self.dataset = dataset
        self.config = config
        self.fitness = fitness
        self.maximize = metric_table.maximize(fitness)
        self.cache = ProgramCache()
        self.last_result: PopulationResult | None = None
        self.last_inherited: np.ndarray | None = None  # bool[P]: who started from a parent
        self._costs = jax.jit(jax.vmap(encoding.cost))

    def param_shapes(self) -> Any:
        """The shapes of one individual's max-bounds parameters (leaves ``[1, ...]``): what
        ``start`` and kept parameters hold per individual."""
        genome = np.zeros((1, self.encoding.space.num_genes), np.int32)
        return jax.eval_shape(lambda g: self.cache.init(
            self.encoding, jax.random.key(0), jnp.zeros(1, jnp.int32), g,
            np.asarray(self.dataset.x_train[:1])), genome)

    def evaluate(self, key: jax.Array, genomes: jax.Array, start: Any = None,
                 keep_params: bool = False) -> Results:
        """Trains ``genomes`` (``int32[P, G]``) from ``key`` and returns their results.

        Host-side: runs ``train_population``, which compiles and runs its own programs.

        Args:
            key: initialisation and batches.
            genomes: the population.
            start: (weight inheritance) starting parameters in the max-bounds layout, leaves
                ``[P, ...]``, NaN where an individual starts as usual. Individuals with any
                starting value train ``config.child_steps()`` (from ``fold_in(key, 1)``), the
                others ``config.steps`` (from ``key``), in two calls.
            keep_params: keep each individual's trained parameters in ``last_result.params``.
        """
        genomes = np.asarray(genomes)
        inherits = (np.zeros(len(genomes), bool) if start is None else np.any(
            [~np.isnan(leaf).all(axis=tuple(range(1, np.ndim(leaf))))
             for leaf in jax.tree.leaves(start)], axis=0))
        parts = []
        fresh = np.flatnonzero(~inherits)
        if len(fresh):
            parts.append((fresh, train_population(
                key, self.encoding, genomes[fresh], self.dataset, self.config, cache=self.cache,
                keep_params=keep_params)))
        children = np.flatnonzero(inherits)
        if len(children):
            config = dataclasses.replace(self.config, steps=self.config.child_steps(),
                                         inherit_steps=None)
            parts.append((children, train_population(
                jax.random.fold_in(key, 1), self.encoding, genomes[children], self.dataset,
                config, cache=self.cache, keep_params=keep_params,
                start=jax.tree.map(lambda a: np.asarray(a)[children], start))))
        result = parts[0][1] if len(parts) == 1 else merge_results(parts, len(genomes))
        self.last_result = result
        self.last_inherited = inherits
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in result.metrics.items()}
        fitness = metrics[self.fitness]
        costs = {k: jnp.asarray(v, jnp.float32)
                 for k, v in self._costs(jnp.asarray(genomes, jnp.int32)).items()}
        return Results(
            fitness=fitness,
            objectives={self.fitness: fitness},
            metrics=metrics,
            costs=costs,
            failed=jnp.asarray(result.failed),
            fidelity=jnp.asarray(result.steps, jnp.int32),
        )
