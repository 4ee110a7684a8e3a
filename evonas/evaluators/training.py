"""``TrainingEvaluator``: fitness by training every genome of a population (``evonas.train``)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.evaluators.base import Results
from evonas.genomes.encoding import check_trainable
from evonas.objectives import metrics as metric_table
from evonas.train import PopulationResult, ProgramCache, TrainConfig, train_population


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
        self._costs = jax.jit(jax.vmap(encoding.cost))

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Trains ``genomes`` (``int32[P, G]``) from ``key`` and returns their results.

        Host-side: runs ``train_population``, which compiles and runs its own programs.
        """
        result = train_population(key, self.encoding, np.asarray(genomes), self.dataset,
                                  self.config, cache=self.cache)
        self.last_result = result
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
