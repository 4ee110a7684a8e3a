"""DARTS, GDAS and DrNAS as strategies of ``evonas run``: the learned distribution and the collapse
share per generation in the history, the report and the views; one compile per search; the same
seed, the same search; the hybrid that hands a learned distribution to evolution; bad input in
one line before anything is created; the examples end to end."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.experiment import Experiment
from evonas.genomes import get_encoding
from evonas.report import write_report
from evonas.report.history import read_snapshot
from evonas.report.views import run_data
from evonas.store import History
from evonas.strategies import Handoff, get_strategy
from evonas.train import ProgramCache
from tests.experiment_configs import evaluations, tiny_config, tiny_dict

ROOT = pathlib.Path(__file__).resolve().parents[2]
DRNAS = {"strategy": {"name": "drnas", "params": {"arch_learning_rate": 0.05}},
         "final": {"retrain": {"top_k": 1, "steps": 20}}}


@pytest.fixture(scope="module")
def drnas_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("drnas") / "run"
    Experiment(tiny_config(**DRNAS), run_dir=run_dir).run()
    return run_dir


def _space():
    return get_encoding("mlp", **tiny_dict()["encoding"]["options"]).space


def test_each_generation_records_the_learned_distribution_and_asks_its_argmax_first(drnas_run):
    with History(drnas_run / "history.sqlite", readonly=True) as history:
        summaries = history.generations()
        rows = history.rows()
    space = _space()
    assert len(summaries) == 3
    for g, summary in enumerate(summaries):
        believed = summary["beliefs"]
        assert list(believed) == list(space.names)
        for name in space.names:
            assert sum(believed[name].values()) == pytest.approx(1.0, abs=1e-5)
        # The first genome asked in a generation is the argmax of what was learned by then.
        argmax = [int(np.argmax(list(believed[name].values()))) for name in space.names]
        first = min((r for r in rows if r["generation"] == g), key=lambda r: r["id"])
        assert list(first["genome"]) == argmax
        noted = summary["diagnostics"]
        assert noted["epoch"] == g + 1  # one epoch per generation
        assert noted["parameter_free"] == 0.0  # every MLP layer has parameters
        assert np.isfinite(noted["train_loss"]) and np.isfinite(noted["arch_loss"])
    # The distribution learns: the last generation's is not the first's.
    assert summaries[0]["beliefs"] != summaries[-1]["beliefs"]
    # The losses fall as the supernet trains.
    assert summaries[-1]["diagnostics"]["train_loss"] < summaries[0]["diagnostics"]["train_loss"]


def test_the_report_and_the_views_show_what_the_search_reported(drnas_run):
    page = write_report(drnas_run)["html"].read_text()
    assert "What the search reported of itself" in page
    assert "parameter-free share of the argmax" in page
    assert "make up 0% of the learned argmax at the end" in page
    snapshot = read_snapshot(drnas_run)
    data = run_data(drnas_run, snapshot.evaluations, snapshot.generations, importance=False)
    assert [g["diagnostics"]["epoch"] for g in data["generations"]] == [1, 2, 3]
    assert 'id="ev-diagnostics"' in page


def test_diagnostics_from_a_foreign_history_are_escaped_or_left_out(drnas_run, tmp_path):
    import shutil
    import sqlite3

    run_dir = tmp_path / "copy"
    shutil.copytree(drnas_run, run_dir)
    db = sqlite3.connect(run_dir / "history.sqlite")
    db.execute("UPDATE generations SET diagnostics = ? WHERE generation = 0",
               (json.dumps({"<script>x</script>": 1.5}),))
    db.execute("UPDATE generations SET diagnostics = ? WHERE generation = 1",
               (json.dumps({"loss": "zq-not-numeric"}),))
    db.commit()
    db.close()
    page = write_report(run_dir)["html"].read_text()
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "zq-not-numeric" not in page  # a value that is not a number is left out
    generations = read_snapshot(run_dir).generations
    assert generations[1]["diagnostics"] is None


def test_the_same_seed_gives_the_same_search(drnas_run, tmp_path):
    Experiment(tiny_config(**DRNAS), run_dir=tmp_path / "again").run()
    assert evaluations(tmp_path / "again") == evaluations(drnas_run)


@pytest.mark.parametrize("method", ["darts", "gdas"])
def test_a_search_compiles_its_epochs_once_and_resumes_from_its_state(method):
    from evonas.data import load_dataset
    from evonas.train import TrainConfig

    config = tiny_dict()
    encoding = get_encoding("mlp", **config["encoding"]["options"])
    dataset = load_dataset("digits", limit=300)
    train = TrainConfig(steps=20, batch_size=32)
    strategy = get_strategy(method, encoding.space, batch_size=4).bind(
        encoding=encoding, dataset=dataset, train=train, generations=3, cache=ProgramCache())
    key = jax.random.key(0)
    state = strategy.init(key)
    states = []
    for g in range(3):
        genomes, state = strategy.ask(jax.random.fold_in(key, g), state)
        state = strategy.tell(key, genomes, jnp.arange(4.0), state)
        states.append(state)
    assert strategy.bound.program.compiles() == 3  # plan, steps, summary: once each
    # Continuing from generation 1's state (what a checkpoint holds) computes generation 2 again.
    genomes, again = strategy.ask(jax.random.fold_in(key, 2), states[1])
    np.testing.assert_array_equal(again.alpha, states[2].alpha)
    with pytest.raises(ValueError, match="ran its 3 epochs"):
        strategy.ask(key, states[2])


def test_a_hybrid_hands_the_learned_distribution_to_evolution_and_to_asng():
    space = _space()
    target = np.asarray([1, 0, 2, 1, 0][:space.num_genes]) % np.asarray(space.cardinalities)
    onehot = jax.nn.one_hot(target, max(space.cardinalities))
    key = jax.random.key(1)

    def handed(then: str, **params):
        first = get_strategy("pbil", space, batch_size=4)
        hybrid = Handoff(first, get_strategy(then, space, batch_size=4, **params), switch=1,
                         floor=0.0)
        state = hybrid.init(key)
        genomes, state = hybrid.ask(key, state)
        state = hybrid.tell(key, genomes, jnp.arange(4.0), state)
        return hybrid, state.replace(probabilities=onehot)  # as if the first had learned it

    hybrid, state = handed("regularized_evolution", population_size=4, sample_size=2)
    genomes, state = hybrid.ask(key, state)  # the initial population: drawn from it
    assert (np.asarray(genomes) == target).all()
    state = hybrid.tell(key, genomes, jnp.arange(4.0), state)
    assert hybrid.diagnostics(state)["phase"] == 1

    hybrid, state = handed("asng")
    _, state = hybrid.ask(key, state)  # ASNG's prior is the distribution
    np.testing.assert_allclose(state.then.probabilities, onehot, atol=1e-6)


def test_a_hybrid_run_reports_both_phases(tmp_path):
    config = tiny_config(
        strategy={"name": "hybrid", "params": {
            "first": "drnas", "first_generations": 2, "then": "regularized_evolution",
            "then_params": {"population_size": 4, "sample_size": 2}}},
        search={"generations": 4}, final={"retrain": {"top_k": 1, "steps": 20}})
    Experiment(config, run_dir=tmp_path / "run").run()
    with History(tmp_path / "run" / "history.sqlite", readonly=True) as history:
        phases = [g["diagnostics"]["phase"] for g in history.generations()]
    assert phases == [0, 0, 1, 1]
    page = write_report(tmp_path / "run")["html"].read_text()
    assert "Hybrid search: the first strategy&#x27;s best" in page or \
        "Hybrid search: the first strategy's best" in page


@pytest.mark.parametrize("sections, message", [
    ({"evaluator": {"name": "tabular"}, "encoding": {"name": "nb201", "options": {}},
      "search": {"objectives": [{"name": "test_acc"}]}},
     r"strategy 'darts' trains the encoding's supernet on the data: it needs a trainable "
     r"encoding and a dataset, not a table"),
    ({"search": {"generations": None, "evaluations": 12}},
     r"strategy 'darts' spreads its epochs over the generations: set search.generations"),
    ({"search": {"evaluations": 8}},
     r"strategy 'darts' plans 3 generations x 1 epochs, but search.evaluations=8 stops it "
     r"after 2 generations of 4, before its schedules end: set search.evaluations to at least "
     r"9"),
    ({"strategy": {"name": "gdas", "params": {"temperature": [0.0, 1.0]}}},
     r"Relaxation.temperature must be \(start, end\), both > 0"),
    ({"strategy": {"name": "drnas", "params": {"anchor_weight": 0.0}}},
     r"Relaxation.anchor_weight must be"),
    ({"strategy": {"name": "darts", "params": {"epochs_per_generation": 0}}},
     r"darts.epochs_per_generation must be"),
    ({"train": {"batch_size": 200}},
     r"halves of the training split: \d+ examples each, fewer than train.batch_size=200"),
    ({"strategy": {"name": "hybrid", "params": {"first": "darts", "first_generations": 3}}},
     r"hybrid: first_generations=3 leaves nothing of search.generations=3"),
    ({"strategy": {"name": "hybrid", "params": {"first": "regularized_evolution",
                                                 "first_generations": 1}}},
     r"hybrid: the first strategy keeps no distribution"),
])
def test_bad_input_is_one_line_before_anything_is_created(tmp_path, sections, message):
    base = {"strategy": {"name": "darts", "params": {}}}
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    with pytest.raises(ValueError, match=message) as caught:
        Experiment(tiny_config(**base), run_dir=tmp_path / "run").run()
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "run").exists()


def test_an_encoding_without_the_relax_hook_is_refused_in_one_line(tmp_path, capsys):
    from evonas.cli import main

    code = main(["run", str(ROOT / "examples" / "trainable_encoding.yaml"), "--run-dir",
                 str(tmp_path / "run"), "--set", "strategy.name=darts", "--set",
                 "strategy.params={}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "has no relax()" in err[0] and "gated_mlp" in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("example", ["darts.yaml", "darts_argmax.yaml", "gdas.yaml",
                                     "drnas.yaml"])
def test_the_example_runs_end_to_end(example, tmp_path):
    import evonas
    from evonas.cli import main

    run_dir = tmp_path / "run"
    args = ["run", str(ROOT / "examples" / example), "--run-dir", str(run_dir)]
    top_k = 1 if example == "darts_argmax.yaml" else 2  # it trains the argmax alone
    population = [] if top_k == 1 else ["search.population_size=3"]
    for setting in ["search.generations=2", *population, "train.steps=20",
                    "final.retrain.steps=40", f"final.retrain.top_k={top_k}", "dataset.limit=400",
                    "display.progress=false", "encoding.options.max_layers=2",
                    "encoding.options.widths=[8, 16]", "strategy.params.epochs_per_generation=1"]:
        args += ["--set", setting]
    assert main(args) == 0
    with History(run_dir / "history.sqlite", readonly=True) as history:
        summaries = history.generations()
    assert [s["diagnostics"]["epoch"] for s in summaries] == [1, 2]
    assert all(0.0 <= s["diagnostics"]["parameter_free"] <= 1.0 for s in summaries)
    final = json.loads((run_dir / "best" / "final.json").read_text())
    assert len(final["models"]) == top_k
    assert all(0.0 < m["test_acc"] <= 1.0 for m in final["models"])
    module, variables, _ = evonas.load_model(run_dir)
    assert module.apply(variables, jnp.zeros((2, 40, 1))).shape == (2, 10)
    assert "What the search reported of itself" in (run_dir / "report" / "index.html").read_text()


def test_a_diverged_supernet_stops_in_one_line(tmp_path, capsys):
    """A supernet whose loss or architecture parameters become NaN (here: a learning rate of
    1e9) ends the search with one line naming the epochs and what to lower, not with the
    history refusing a NaN."""
    from evonas.cli import main
    from tests.experiment_configs import write_yaml

    path = write_yaml(tmp_path / "exp.yaml", **DRNAS)
    code = main(["run", str(path), "--run-dir", str(tmp_path / "run"), "--set",
                 "train.learning_rate=1e9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "strategy 'drnas': the supernet's training diverged in epochs 1-1" in err[0]
    assert "lower train.learning_rate" in err[0]
    assert not (tmp_path / "run").exists()  # nothing was committed, so nothing is kept
