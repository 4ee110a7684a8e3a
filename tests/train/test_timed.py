"""The timed trainer (``train_for_seconds``) and the final stage's retraining to a budget."""

from __future__ import annotations

import json
import time

import flax.linen as nn
import jax
import numpy as np
import pytest

import evonas
from evonas.train import TrainConfig, accuracy, predict_logits, standalone, train_for_seconds
from tests.experiment_configs import tiny_config


class _MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(3)(nn.relu(nn.Dense(32)(x)))


def _blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 3, (3, 8))[y] + rng.normal(0, 1, (n, 8))
    return x.astype(np.float32), y.astype(np.int32)


def test_train_for_seconds_ends_at_its_budget_with_the_cosine_stretched_over_the_steps_that_fit(
        monkeypatch):
    x, y = _blobs()
    config = TrainConfig(learning_rate=1e-2, batch_size=64)
    rates = []
    original = standalone.learning_rate_at

    def spy(options, progress):
        rates.append(original(options, progress))
        return rates[-1]

    monkeypatch.setattr(standalone, "learning_rate_at", spy)
    took, steps = {}, {}
    for seconds in (2.0, 4.0):
        rates.clear()
        start = time.perf_counter()
        params, steps[seconds] = train_for_seconds(jax.random.key(0), _MLP(), x, y, config,
                                                   seconds)
        took[seconds] = time.perf_counter() - start
        assert len(rates) == steps[seconds]
        # the schedule's length followed the clock: peak first, decayed to ~0 at the end
        assert rates[0] == pytest.approx(1e-2) and rates[-1] < 1e-2 * 0.02
        assert accuracy(predict_logits(_MLP(), params, x), y) > 0.9
    for seconds in took:  # the compile counts against the budget
        assert seconds * 0.9 < took[seconds] < seconds * 1.1 + 0.2
    assert steps[4.0] > steps[2.0] > 100


def test_train_for_seconds_stops_at_max_steps_and_refuses_bad_budgets():
    x, y = _blobs(200)
    config = TrainConfig(learning_rate=1e-2, batch_size=32)
    _, steps = train_for_seconds(jax.random.key(1), _MLP(), x, y, config, 30.0, max_steps=25)
    assert steps == 25
    for bad in (0, -1.0, float("nan"), "10"):
        with pytest.raises(ValueError, match="train_for_seconds: seconds must be"):
            train_for_seconds(jax.random.key(1), _MLP(), x, y, config, bad)
    with pytest.raises(ValueError, match="max_steps must be a positive int"):
        train_for_seconds(jax.random.key(1), _MLP(), x, y, config, 1.0, max_steps=0)


def test_retrain_run_with_seconds_shares_the_budget_and_records_each_models_steps(tmp_path):
    run = tmp_path / "run"
    evonas.Experiment(tiny_config(final={"retrain": {"top_k": 0}}), run_dir=run).run()
    with pytest.raises(ValueError, match="retrain_run: seconds must be a number above 0"):
        evonas.retrain_run(run, top_k=2, seconds=0)
    assert not (run / "best" / "final.json").exists()
    start = time.perf_counter()
    final = evonas.retrain_run(run, top_k=2, seconds=4.0)
    took = time.perf_counter() - start
    assert took < 4.0 * 1.1 + 10  # testing, ensemble and export are extra: seconds
    models = final["models"]
    assert len(models) == 2 and all(m["steps"] > 40 for m in models)
    assert final["retrain_steps"] == models[0]["steps"] and final["retrain_seconds"] == 4.0
    assert final["best_test_acc"] > 0.5
    exported = json.loads((run / "best" / "architecture.json").read_text())
    assert exported["steps"] == models[0]["steps"]


def test_a_yaml_retraining_time_budget_times_the_top_k_and_distil_and_prune_follow_the_best(
        tmp_path):
    """``final.retrain.time_budget`` as a user sets it in YAML: the top 2 share the seconds,
    and distillation and pruning default to the steps the best trained (not ``steps``, which is
    then only the most each may train)."""
    run = tmp_path / "run"
    config = tiny_config(final={"retrain": {"top_k": 2, "steps": 10**8, "time_budget": 4},
                                "distil": {"temperature": 2.0},
                                "prune": {"mode": "unstructured", "sparsity": 0.5}})
    start = time.perf_counter()
    evonas.Experiment(config, run_dir=run).run()
    final = json.loads((run / "best" / "final.json").read_text())
    models = final["models"]
    assert final["retrain_seconds"] == 4.0 and final["retrain_steps"] == models[0]["steps"]
    assert all(m["steps"] > 40 for m in models) and "ensemble_test_acc" in final
    best_steps = models[0]["steps"]
    assert final["distillation"]["steps"] == best_steps
    assert final["pruning"]["steps"] == best_steps // 4
    assert time.perf_counter() - start < 120
    for bad in (0, -3):
        with pytest.raises(ValueError, match="final.retrain.time_budget"):
            tiny_config(final={"retrain": {"time_budget": bad}})


def test_a_stall_past_the_deadline_still_lands_the_schedule(monkeypatch):
    """A pause longer than the time left (another process, a swap) mid-schedule: the trainer
    does not stop at a high learning rate, it decays to ~0 over a few more steps."""
    x, y = _blobs(200)
    rates = []
    original = standalone.learning_rate_at

    def stalling(options, progress):
        rates.append(original(options, progress))
        if progress > 0.3 and not getattr(stalling, "done", False):
            stalling.done = True
            time.sleep(3.0)  # past the whole budget
        return rates[-1]

    monkeypatch.setattr(standalone, "learning_rate_at", stalling)
    start = time.perf_counter()
    _, steps = train_for_seconds(jax.random.key(2), _MLP(), x, y,
                                 TrainConfig(learning_rate=1e-2, batch_size=32), 2.5)
    assert time.perf_counter() - start < 2.5 + 3.0 + 0.5
    assert stalling.done and len(rates) == steps
    assert rates[-1] < 1e-2 * 0.05  # landed, not cut at about 0.8 of the peak
