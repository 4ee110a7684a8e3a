"""Successive halving inside a call: the promoted train on exactly as if never interrupted, the
rest keep their rung's numbers, and the promotion is the top ``1 / eta`` by validation accuracy."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from evonas.data import load_dataset
from evonas.genomes.mlp import MLPEncoding
from evonas.train import Halving, TrainConfig, train_population

GENOMES = np.array([[0, 0, 0, 1, 0], [1, 1, 1, 0, 1], [0, 0, 1, 1, 1], [1, 0, 0, 1, 1],
                    [1, 1, 0, 1, 0]], np.int32)
CONFIG = dict(steps=12, batch_size=32, learning_rate=2e-2, eval_batch_size=512,
              schedule="cosine", steps_per_call=4)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mnist1d", limit=256)


@pytest.fixture(scope="module")
def encoding():
    return MLPEncoding(input_shape=(40, 1), widths=(8, 16), max_layers=2,
                       activations=("relu", "tanh"))


@pytest.mark.parametrize("plan", ["masked", "grouped"])
def test_the_promoted_train_on_as_if_never_stopped(encoding, dataset, plan):
    def train(halving=None):
        return train_population(jax.random.key(0), encoding, GENOMES, dataset,
                                TrainConfig(**CONFIG, plan=plan), halving=halving)

    full = train()
    halved = train(Halving((4, 8), eta=2))  # 5 -> 3 at step 4 -> 2 at step 8 -> 12
    narrow = train(Halving((4,), eta=100))  # 5 -> 1 at step 4: the other four keep step 4
    assert sorted(np.bincount(halved.steps, minlength=13)[[4, 8, 12]]) == [1, 2, 2]
    assert full.steps.tolist() == [12] * 5
    top = halved.steps == 12
    for name in ("val_acc", "val_loss", "train_loss"):
        np.testing.assert_allclose(halved.metrics[name][top], full.metrics[name][top],
                                   rtol=1e-6, err_msg=name)
    # The first rung's numbers are the same in both halved runs; promotion took the best.
    at4 = halved.steps == 4
    assert (narrow.steps[at4] == 4).all()
    np.testing.assert_allclose(halved.metrics["val_loss"][at4],
                               narrow.metrics["val_loss"][at4], rtol=1e-6)
    rung1 = np.where(narrow.steps == 4, narrow.metrics["val_acc"], np.inf)
    worst_promoted = rung1[halved.steps > 4].min()
    assert (rung1[at4] <= worst_promoted).all()
    # The stopped did not train on: their numbers are not the full run's.
    assert not np.allclose(halved.metrics["train_loss"][~top], full.metrics["train_loss"][~top])


@pytest.mark.parametrize("changes, message", [
    (dict(rungs=(4,), eta=1), "halving.eta must be an integer >= 2; got 1"),
    (dict(rungs=(4, 12)), r"halving.rungs \[4, 12\] must be below train.steps=12"),
    (dict(rungs=(8, 4)), "must increase"),
    (dict(rungs=(6,)), "multiples of train.steps_per_call=4"),
    (dict(rungs=()), "must list at least one step"),
])
def test_bad_rungs_fail_in_one_line(encoding, dataset, changes, message):
    with pytest.raises(ValueError, match=message) as info:
        halving = Halving(**changes)
        train_population(jax.random.key(0), encoding, GENOMES, dataset, TrainConfig(**CONFIG),
                         halving=halving)
    assert "\n" not in str(info.value)
