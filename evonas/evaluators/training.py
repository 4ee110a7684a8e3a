"""``TrainingEvaluator``: fitness by training every genome of a population (``evonas.train``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.evaluators.base import Results, fitness_metric
from evonas.genomes.encoding import check_trainable
from evonas.objectives import metrics as metric_table
from evonas.train import PopulationResult, ProgramCache, TrainConfig, train_population
from evonas.train.halving import Halving


class TrainingEvaluator:
    """Trains each genome with ``evonas.train.train_population`` and scores it on validation.

    Compiled programs are kept across generations (one :class:`~evonas.train.ProgramCache` per
    evaluator, bounded by ``config.max_programs``), so a search that revisits shapes does not
    compile them again.

    Args:
        encoding: a trainable encoding.
        dataset: an ``evonas.data.Dataset``.
        config: the training configuration (``TrainConfig()`` by default).
        fitness: the metric returned as fitness, e.g. ``"val_acc"`` (maximised) or
            ``"val_loss"`` (minimised); NaN for failed individuals.
        cache: the compiled programs to share (default: a new cache of its own).
        trainer: what trains a population, ``train_population``'s signature (default
            ``train_population``; a multi-process run passes one that shares each call with the
            other processes).
    """

    protocol = "training"
    estimate = "trained"

    def __init__(self, encoding: Any, dataset: Any, config: TrainConfig | None = None,
                 fitness: str = "val_acc", *, cache: ProgramCache | None = None,
                 trainer: Callable[..., PopulationResult] | None = None):
        check_trainable(encoding, require_build=False)
        config = config if config is not None else TrainConfig()
        fitness_metric("TrainingEvaluator", fitness, config)
        self.encoding = encoding
        self.dataset = dataset
        self.config = config
        self.fitness = fitness
        self.maximize = metric_table.maximize(fitness)
        self.cache = cache if cache is not None else ProgramCache(config.max_programs)
        self.trainer = trainer if trainer is not None else train_population

    def param_shapes(self) -> Any:
        """The shapes of one individual's max-bounds parameters (leaves ``[1, ...]``): what
        ``start`` and kept parameters hold per individual."""
        genome = np.zeros((1, self.encoding.space.num_genes), np.int32)
        return jax.eval_shape(lambda g: self.cache.init(
            self.encoding, jax.random.key(0), jnp.zeros(1, jnp.int32), g,
            np.asarray(self.dataset.x_train[:1])), genome)

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Trains ``genomes`` (``int32[P, G]``) from ``key`` for ``config.steps``."""
        return self.train(key, genomes)

    def train(self, key: jax.Array, genomes: jax.Array, *, steps: int | None = None,
              start: Any = None, keep_params: bool = False,
              halving: Halving | None = None) -> Results:
        """Trains ``genomes`` (``int32[P, G]``) from ``key`` and returns their results.

        Host-side: runs the trainer, which compiles and runs its own programs. The evaluators
        that change how a population trains (weight inheritance, successive halving) call this.

        Args:
            key: initialisation and batches.
            genomes: the population.
            steps: optimiser steps (default ``config.steps``).
            start: starting parameters in the max-bounds layout, leaves ``[P, ...]``, NaN where
                an individual starts as usual.
            keep_params: return each individual's trained parameters (``Results.params``).
            halving: successive halving inside the call.
        """
        config = self.config if steps is None else dataclasses.replace(self.config, steps=steps)
        result = self.trainer(key, self.encoding, np.asarray(genomes), self.dataset, config,
                              cache=self.cache, start=start, keep_params=keep_params,
                              halving=halving)
        metrics = {k: jnp.asarray(v, jnp.float32) for k, v in result.metrics.items()}
        fitness = metrics[self.fitness]
        return Results(
            fitness=fitness, objectives={self.fitness: fitness}, metrics=metrics, costs={},
            failed=jnp.asarray(result.failed),
            fidelity=jnp.asarray(result.steps, jnp.int32),
            params=result.params, reasons=tuple(result.reasons), seconds=result.seconds,
            report=result,
        )
