"""End to end: regularized evolution with a ``TrainingEvaluator`` on MNIST-1D (slow)."""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from evonas.data import load_dataset
from evonas.evaluators import TrainingEvaluator
from evonas.genomes.conv import ConvEncoding
from evonas.strategies.regularized_evolution import RegularizedEvolution
from evonas.train import TrainConfig


@pytest.mark.slow
def test_regularized_evolution_finds_a_cnn_above_68_percent():
    dataset = load_dataset("mnist1d")
    # A small space (two conv layers, two kernel sizes, one width): few shape signatures, so the
    # search spends its minute training rather than compiling.
    encoding = ConvEncoding(input_shape=dataset.input_shape, max_layers=2, widths=(32,),
                            ops=("conv3", "conv5"), activations=("relu", "gelu"), stem_width=16)
    evaluator = TrainingEvaluator(encoding, dataset, TrainConfig(
        steps=120, batch_size=128, learning_rate=1e-2, plan="grouped"))
    strategy = RegularizedEvolution(encoding.space, population_size=8, sample_size=3,
                                    batch_size=8)
    key = jax.random.key(0)
    state = strategy.init(key)
    start = time.perf_counter()
    best = []
    for generation in range(3):
        k_ask, k_eval = jax.random.split(jax.random.fold_in(key, generation))
        genomes, state = strategy.ask(k_ask, state)
        results = evaluator.evaluate(k_eval, genomes)
        assert not bool(results.failed.any())
        state = strategy.tell(genomes, results.fitness, state)
        best.append(float(state.best_fitness))
    elapsed = time.perf_counter() - start
    print(f"best val acc per generation {best}, {elapsed:.1f} s")
    assert best[-1] > 0.68, best
    assert np.all(np.diff(best) >= 0)  # the best so far never gets worse
    assert elapsed < 60.0, f"search took {elapsed:.1f} s"
