"""Regularized evolution with a ``TrainingEvaluator`` on MNIST-1D; prints one JSON line.

Run by ``tests/test_train_search.py`` in its own process, so that it is timed with XLA's normal
optimisation level (the test session compiles at the lowest level, see ``conftest.py``).
"""

import json
import time

import jax

from evonas.data import load_dataset
from evonas.evaluators import TrainingEvaluator
from evonas.genomes.conv import ConvEncoding
from evonas.strategies.regularized_evolution import RegularizedEvolution
from evonas.train import TrainConfig


def main():
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
    best, failed = [], 0
    for generation in range(3):
        k_ask, k_eval = jax.random.split(jax.random.fold_in(key, generation))
        genomes, state = strategy.ask(k_ask, state)
        results = evaluator.evaluate(k_eval, genomes)
        failed += int(results.failed.sum())
        state = strategy.tell(jax.random.key(0), genomes, results.fitness, state)
        best.append(float(state.best_fitness))
    print(json.dumps({"best": best, "failed": failed, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
