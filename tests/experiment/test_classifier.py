"""``search_classifier``: arrays in, a retrained classifier out, within its time budget; and the
time budget of a search."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import evonas
from evonas.experiment.classifier import choose, parse_duration
from tests.experiment_configs import tiny_config


def _blobs(n: int, features: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian classes of feature vectors, labelled by strings."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = rng.normal(0, 3, (3, features))
    x = centres[y] + rng.normal(0, 1, (n, features))
    return x.astype(np.float32), np.array(["ant", "bee", "cat"])[y]


@pytest.mark.slow
def test_search_classifier_returns_a_retrained_classifier_within_its_budget(tmp_path, capsys):
    x, y = _blobs(600)
    start = time.perf_counter()
    clf = evonas.search_classifier(x, y, time_budget=40, run_dir=tmp_path / "run", seed=1)
    took = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "vectors of 6 features: mlp" in out and "retraining the top 3" in out
    choices = json.loads((tmp_path / "run" / "classifier.json").read_text())
    assert choices["encoding"]["name"] == "mlp" and choices["time_budget_s"] == 40
    assert took < 40 * 1.5 + 15  # the search stopped at its share; compiles are the slack
    assert clf.class_names == ["ant", "bee", "cat"]
    assert clf.test_accuracy > 0.8 and clf.ensemble_test_accuracy is not None
    predicted = clf.predict(x[:50])
    assert set(predicted) <= {"ant", "bee", "cat"} and np.mean(predicted == y[:50]) > 0.8
    proba = clf.predict_proba(x[:7])
    assert proba.shape == (7, 3) and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert clf.predict_proba(x[0]).shape == (1, 3)
    with pytest.raises(ValueError, match="this classifier takes examples of shape"):
        clf.predict(x[:3, :4])
    final = json.loads((tmp_path / "run" / "best" / "final.json").read_text())
    assert final["retrain_seconds"] == choices["retrain_seconds"] and len(final["models"]) == 3
    assert final["retrain_steps"] == final["models"][0]["steps"] >= 1
    assert evonas.Classifier.load(tmp_path / "run").test_accuracy == clf.test_accuracy


def test_the_choices_follow_the_data_and_the_budget():
    images = evonas.Dataset.from_arrays(np.zeros((60, 28, 28), np.uint8) + np.arange(60)[
        :, None, None].astype(np.uint8), np.arange(60) % 2)
    chosen = choose(images, 3600)
    assert chosen["encoding"]["name"] == "conv"
    assert chosen["encoding"]["options"]["reductions"] == [1, 3]  # 28 -> 14 -> 7
    assert chosen["train"]["augment"] == {"crop": 2}
    vectors = evonas.Dataset.from_arrays(*_blobs(200))
    assert choose(vectors, 60)["encoding"]["name"] == "mlp"
    assert choose(vectors, 60)["method"] == "successive halving"
    assert choose(vectors, 36_000)["method"] == "full training"
    assert parse_duration("1.5h") == 5400 and parse_duration("30m") == 1800
    for bad in ("soon", "10s", -5):
        with pytest.raises(ValueError, match="time_budget"):
            parse_duration(bad)


def test_a_time_budget_starts_no_generation_the_last_one_says_would_overrun_it(tmp_path):
    config = tiny_config(search={"generations": None, "time_budget": 3.0},
                         final={"retrain": {"top_k": 0}})
    result = evonas.Experiment(config, run_dir=tmp_path / "run").run()
    from evonas.store import History

    with History(tmp_path / "run" / "history.sqlite", readonly=True) as history:
        seconds = [g["wall_seconds"] for g in history.generations()]
    assert result.generations == len(seconds) >= 1
    # Each generation after the first started because the one before, repeated, fitted.
    for g in range(1, len(seconds)):
        assert sum(seconds[:g]) + seconds[g - 1] <= 3.0
    assert sum(seconds) + seconds[-1] > 3.0  # the next one would have ended past the budget
    again = evonas.Experiment.resume(tmp_path / "run").run()
    assert again.already_finished and again.generations == result.generations
