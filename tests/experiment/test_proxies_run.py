"""Zero-cost proxies in a run: recorded as metrics, bounded before training, and a pre-filter
that trains the best of several candidates by the proxy."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from evonas.experiment import Experiment
from evonas.experiment.components import build_components
from evonas.store import History
from evonas.train import zero_cost_scores
from tests.experiment_configs import tiny_config


def _rows(run_dir):
    with History(run_dir / "history.sqlite", readonly=True) as history:
        return history.rows()


def test_proxies_are_metrics_and_their_bounds_are_checked_before_training(tmp_path):
    config = tiny_config(evaluator={"proxies": ["naswot", "snip"]}, search={"generations": 2},
                         final={"retrain": {"top_k": 0}})
    Experiment(config, run_dir=tmp_path / "a").run()
    trained = [r for r in _rows(tmp_path / "a") if not r["cached"]]
    # These MLPs have fewer units than the batch has examples: naswot's kernel is singular
    # (log det -inf, stored as null); snip is finite and ranks them.
    assert all("naswot" in r["metrics"] for r in trained)
    snip = [r["metrics"]["snip"] for r in trained]
    assert all(np.isfinite(snip)) and len(set(snip)) > 1
    bound = float(np.median(snip))
    bounded = tiny_config(evaluator={"proxies": ["snip"]},
                          search={"generations": 2, "constraints": [f"snip >= {bound}"]},
                          final={"retrain": {"top_k": 0}})
    Experiment(bounded, run_dir=tmp_path / "b").run()
    rows = _rows(tmp_path / "b")
    assert any(r["failed"] for r in rows) and any(not r["failed"] for r in rows)
    for r in rows:
        if r["failed"]:  # refused untrained: no validation score
            assert r["reason"].startswith("constraint snip >=") and r["val_acc"] is None
        else:
            assert r["metrics"]["snip"] >= bound


def test_the_prefilter_keeps_the_best_candidate_by_the_proxy():
    config = tiny_config(evaluator={"prefilter": {"proxy": "snip", "factor": 3}})
    parts = build_components(config)
    genomes = parts.encoding.space.sample(jax.random.key(0), 4)
    key = jax.random.key(5)
    chosen = np.asarray(parts.strategy.screen(key, genomes))
    k_mutate, k_score = jax.random.split(key)
    from evonas.operators import mutate_one

    candidates = np.concatenate([np.asarray(genomes)] + [np.asarray(mutate_one(
        jax.random.fold_in(k_mutate, j), genomes, parts.encoding.space)) for j in range(2)])
    scores = zero_cost_scores(k_score, parts.encoding, candidates, parts.dataset, ("snip",))
    best = candidates.reshape(3, 4, -1)[np.argmax(scores["snip"].reshape(3, 4), 0), np.arange(4)]
    np.testing.assert_array_equal(chosen, best)
    assert (chosen != np.asarray(genomes)).any()  # a mutant won somewhere


def test_a_prefiltered_run_trains_one_genome_per_slot(tmp_path):
    config = tiny_config(evaluator={"prefilter": {"proxy": "grad_norm", "factor": 2}},
                         search={"generations": 2}, final={"retrain": {"top_k": 1}})
    result = Experiment(config, run_dir=tmp_path / "r").run()
    assert result.evaluations == 8 and result.final is not None
    rows = _rows(tmp_path / "r")
    assert {r["estimate"] for r in rows if not r["cached"]} == {"grad_norm+trained"}


def test_the_prefilter_is_a_strategy_whose_tell_gets_what_its_ask_returned():
    """The screened genomes are the wrapper's ask; the wrapped strategy is told them."""
    from evonas.strategies import Prefilter

    parts = build_components(tiny_config(evaluator={"prefilter": {"proxy": "snip",
                                                                  "factor": 3}}))
    screen = parts.strategy
    assert isinstance(screen, Prefilter)
    state = screen.init(jax.random.key(0))
    genomes, asked_state = screen.ask(jax.random.key(1), state)
    plain, _ = screen.inner.ask(jax.random.key(1), state)
    assert (np.asarray(genomes) != np.asarray(plain)).any()  # screening replaced some
    told = screen.tell(jax.random.key(2), genomes, np.arange(4, dtype=np.float32), asked_state)
    np.testing.assert_array_equal(told.population[:4], genomes)


@pytest.mark.parametrize("section, message", [
    ({"proxies": ["jacov"]}, r"evaluator.proxies must be one of \['naswot', 'synflow', "
                             r"'grad_norm', 'snip'\]; got 'jacov'"),
    ({"prefilter": {"proxy": "naswot", "factor": 1}},
     r"evaluator.prefilter.factor must be an integer >= 2; got 1"),
])
def test_bad_proxy_settings_are_one_line(section, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(evaluator=section)
