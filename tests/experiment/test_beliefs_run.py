"""A distribution-based search in ``evonas run``: its beliefs per generation, in the history and the
report."""

from __future__ import annotations

import json
import sqlite3

import pytest

from evonas.experiment import Experiment
from evonas.genomes import get_encoding
from evonas.report import write_report
from evonas.store import History
from tests.experiment_configs import tiny_config, tiny_dict


@pytest.fixture(scope="module")
def asng_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("asng") / "run"
    config = tiny_config(strategy={"name": "asng", "params": {}},
                         final={"retrain": {"top_k": 1, "steps": 20}})
    Experiment(config, run_dir=run_dir).run()
    return run_dir


def _space():
    options = tiny_dict()["encoding"]["options"]
    return get_encoding("mlp", **options).space


def test_every_generation_records_a_distribution_over_each_named_gene(asng_run):
    with History(asng_run / "history.sqlite", readonly=True) as history:
        summaries = history.generations()
    space = _space()
    assert len(summaries) == 3
    for summary in summaries:
        believed = summary["beliefs"]
        assert list(believed) == list(space.names)
        for g, name in enumerate(space.names):
            assert len(believed[name]) == space.cardinalities[g]
            assert sum(believed[name].values()) == pytest.approx(1.0, abs=1e-5)
    # The distribution moves as the search learns: the last generation's is not the first's.
    assert summaries[0]["beliefs"] != summaries[-1]["beliefs"]


def test_the_report_shows_what_the_search_believes_after_its_last_generation(asng_run):
    page = write_report(asng_run)["html"].read_text()
    assert "What the search believes (after generation 2)" in page
    for name in _space().names:
        assert f"<td>{name}</td>" in page


def test_believed_values_from_a_foreign_history_are_escaped(asng_run, tmp_path):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(asng_run, run_dir)
    db = sqlite3.connect(run_dir / "history.sqlite")
    hostile = {"<script>alert(1)</script>": {"<b>x</b>": 1.0}}
    db.execute("UPDATE generations SET beliefs = ? WHERE generation = 2", (json.dumps(hostile),))
    db.commit()
    db.close()
    page = write_report(run_dir)["html"].read_text()
    assert "<script>alert(1)</script>" not in page and "<b>x</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_strategy_without_a_distribution_shows_no_beliefs(tmp_path):
    run_dir = tmp_path / "rea"
    Experiment(tiny_config(final={"retrain": {"top_k": 1, "steps": 20}}),
               run_dir=run_dir).run()
    with History(run_dir / "history.sqlite", readonly=True) as history:
        assert all(s["beliefs"] is None for s in history.generations())
    assert "What the search believes" not in write_report(run_dir)["html"].read_text()
