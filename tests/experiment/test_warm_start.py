"""Warm starts: a search starts from an earlier run's best architectures (evaluated again on its
own data, never copied) or from its distribution; deterministic, kept in the run directory,
refused in one line when the earlier run can't be used."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evonas
from evonas.genomes.space import GenomeSpace
from evonas.store import History
from evonas.strategies import DistributionSearch, RegularizedEvolution, Reinforce
from evonas.strategies import _categorical as cat
from evonas.strategies.warm_start import WarmStart
from tests.experiment_configs import evaluations, tiny_config

SPACE = GenomeSpace.from_genes({"a": 3, "b": 2, "c": 4})
EARLIER = np.array([[2, 1, 3], [0, 1, 2], [2, 0, 0]], np.int32)


def test_a_strategy_without_a_distribution_asks_the_earlier_genomes_first():
    inner = RegularizedEvolution(SPACE, population_size=4, sample_size=2, batch_size=2)
    warm = WarmStart(inner, EARLIER)
    state = warm.init(jax.random.key(0))
    asked = []
    for g in range(3):
        genomes, state = warm.ask(jax.random.key(g), state)
        asked.append(np.asarray(genomes))
        state = warm.tell(jax.random.key(9), genomes, jnp.arange(2.0), state)
    # Its first population is random (no parents): the earlier genomes take those places, in
    # order, until they are used up; what follows is its own.
    np.testing.assert_array_equal(asked[0], EARLIER[:2])
    np.testing.assert_array_equal(asked[1][0], EARLIER[2])
    assert int(state.used) == 3 and warm.diagnostics(state)["warm_genomes_asked"] == 3.0


@pytest.mark.parametrize("inner", [DistributionSearch(SPACE, batch_size=4),
                                   DistributionSearch(SPACE, method="pbil", batch_size=4),
                                   Reinforce(SPACE, batch_size=4)])
def test_a_strategy_with_a_distribution_starts_from_the_earlier_one(inner):
    earlier = np.asarray(cat.uniform(SPACE)).copy()
    earlier[0, :3] = [0.8, 0.1, 0.1]
    warm = WarmStart(inner, EARLIER, earlier, floor=0.05)
    state = warm.init(jax.random.key(0))
    prior = warm.distribution()
    assert prior[0, 0] > 0.7 and np.all(prior[np.asarray(cat.uniform(SPACE)) > 0] > 0.04)
    np.testing.assert_allclose(np.asarray(state.probabilities), prior, atol=1e-5)
    genomes, state = warm.ask(jax.random.key(1), state)
    assert int(state.used) == len(EARLIER)  # it samples its prior: no genome was replaced
    # Without an earlier distribution, the prior is the earlier genomes' value frequencies.
    frequencies = WarmStart(inner, EARLIER).distribution()
    assert frequencies[0, 2] > frequencies[0, 0] > frequencies[0, 1]


@pytest.mark.parametrize("method", ["darts", "gdas", "drnas"])
def test_relaxed_architecture_parameters_take_a_distribution(method):
    from evonas.train.differentiable import Relaxation, alpha_for, gene_mask, probabilities

    relaxation = Relaxation(method=method)
    target = np.asarray(cat.uniform(SPACE)).copy()
    target[2, :4] = [0.7, 0.1, 0.1, 0.1]
    target[1, :2] = [0.05, 0.95]
    mask = gene_mask(SPACE)
    got = probabilities(relaxation, alpha_for(relaxation, target, mask), mask)
    np.testing.assert_allclose(np.asarray(got), target, atol=1e-5)


def _source(tmp_path, **sections):
    config = tiny_config(final={"retrain": {"top_k": 0}}, **sections)
    evonas.Experiment(config, run_dir=tmp_path / "earlier").run()
    return tmp_path / "earlier"


def test_a_warm_run_evaluates_the_earlier_best_again_on_its_own_data(tmp_path):
    source = _source(tmp_path)
    with History(source / "history.sqlite", readonly=True) as history:
        old = [r for r in history.rows() if not r["failed"]]
    best = []
    for row in sorted(old, key=lambda r: (-r["fitness"], r["id"])):
        if tuple(row["genome"]) not in best:
            best.append(tuple(row["genome"]))
    # Other data (another subset of the digits): what was measured before does not hold.
    config = tiny_config(dataset={"name": "digits", "limit": 240},
                         search={"warm_start": str(source), "generations": 2},
                         final={"retrain": {"top_k": 0}})
    evonas.Experiment(config, run_dir=tmp_path / "warm").run()
    rows = evaluations(tmp_path / "warm")
    assert [r[2] for r in rows if r[1] == 0] == best[:4]  # its first population, best first
    assert all(all(p < 0 for p in r[6]) for r in rows if r[1] == 0)  # asked afresh
    # Evaluated again, never copied: the same architectures score differently on this data.
    old_scores = {(tuple(r["genome"]), r["fitness"]) for r in old}
    copied = [r for r in rows if (r[2], r[3]) in old_scores]
    assert len(copied) < len([r for r in rows if r[1] == 0])
    kept = json.loads((tmp_path / "warm" / "warm_start.json").read_text())
    assert [tuple(g) for g in kept["genomes"]] == best[:4] and kept["source"] == str(source)
    # The same seed gives the same search.
    evonas.Experiment(config, run_dir=tmp_path / "again").run()
    assert evaluations(tmp_path / "again") == rows
    # A resume reads what the run kept, never the earlier run (gone here).
    import shutil

    shutil.rmtree(source)
    assert evonas.Experiment.resume(tmp_path / "warm").run().already_finished
    assert evaluations(tmp_path / "warm") == rows


def test_asng_warm_started_from_asng_starts_from_its_beliefs(tmp_path):
    asng = {"strategy": {"name": "asng", "params": {}}}
    source = _source(tmp_path, **asng)
    with History(source / "history.sqlite", readonly=True) as history:
        beliefs = history.generations()[-1]["beliefs"]
    config = tiny_config(search={"warm_start": str(source), "generations": 1},
                         final={"retrain": {"top_k": 0}}, **asng)
    evonas.Experiment(config, run_dir=tmp_path / "warm").run()
    kept = json.loads((tmp_path / "warm" / "warm_start.json").read_text())
    first_gene = next(iter(beliefs))
    assert kept["probabilities"][0][:len(beliefs[first_gene])] == pytest.approx(
        list(beliefs[first_gene].values()), abs=1e-6)


def _refused(tmp_path, capsys, warm_start, **sections):
    from evonas.cli import main

    config = tmp_path / "new.yaml"
    import yaml

    from tests.experiment_configs import tiny_dict
    config.write_text(yaml.safe_dump(tiny_dict(**sections)))
    code = main(["run", str(config), "--run-dir", str(tmp_path / "new"),
                 "--warm-start", str(warm_start)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert not (tmp_path / "new").exists()  # refused before anything was created
    return err


def test_an_unusable_earlier_run_is_refused_in_one_line(tmp_path, capsys):
    assert "can't be read" in _refused(tmp_path, capsys, tmp_path / "nowhere")
    source = _source(tmp_path)
    other = {"encoding": {"name": "mlp", "options": {"max_layers": 2, "widths": [8, 32]}}}
    assert "needs the same search space" in _refused(tmp_path, capsys, source, **other)
    from evonas.store import RunDir

    config = tiny_config()
    RunDir.create(tmp_path / "empty", config.to_dict(), config.fingerprint(),
                  fingerprint_version=3).close()
    assert "no finished generation" in _refused(tmp_path, capsys, tmp_path / "empty")


def test_a_one_shot_run_starts_from_the_earlier_supernet(tmp_path):
    """The earlier run's supernet parameters are copied once into the new run and its supernet
    trains from them: at a vanishing learning rate it ends where the earlier one ended."""
    from evonas.evaluators.oneshot import WARM_START
    from evonas.store import ParamStore

    oneshot = {"evaluator": {"name": "oneshot", "supernet_steps": 40}}
    source = _source(tmp_path, **oneshot)
    earlier = ParamStore(source / "supernet", source).load_arrays("state")
    config = tiny_config(search={"warm_start": str(source), "generations": 1},
                         evaluator={"name": "oneshot", "supernet_steps": 2},
                         train={"learning_rate": 1e-12}, final={"retrain": {"top_k": 0}})
    evonas.Experiment(config, run_dir=tmp_path / "warm").run()
    store = ParamStore(tmp_path / "warm" / "supernet", tmp_path / "warm")
    handed, ended = store.load_arrays(WARM_START), store.load_arrays("state")
    params = [k for k in earlier if k.startswith("['params']")]
    assert sorted(handed) == sorted(params) and params
    for k in params:
        assert np.array_equal(handed[k], earlier[k])
        np.testing.assert_allclose(ended[k], earlier[k], atol=1e-6)
    # a cold run of the same config starts elsewhere
    cold = tiny_config(search={"generations": 1}, evaluator={"name": "oneshot",
                                                            "supernet_steps": 2},
                       train={"learning_rate": 1e-12}, final={"retrain": {"top_k": 0}})
    evonas.Experiment(cold, run_dir=tmp_path / "cold").run()
    fresh = ParamStore(tmp_path / "cold" / "supernet", tmp_path / "cold").load_arrays("state")
    assert not all(np.allclose(fresh[k], earlier[k], atol=1e-3) for k in params)
    # the same seed, the same search; a resume reads what the run kept, never the earlier run
    evonas.Experiment(config, run_dir=tmp_path / "again").run()
    assert evaluations(tmp_path / "again") == evaluations(tmp_path / "warm")
