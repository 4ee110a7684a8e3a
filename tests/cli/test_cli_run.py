"""``evonas run / resume / report``: a tiny run end to end, and one-line errors (exit 2) that
leave an existing run directory untouched."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evonas.cli import main
from evonas.store import RunDir
from tests.experiment_configs import tiny_dict, write_yaml

# No final stage: these tests are about the command line, not retraining.
SECTIONS = {"search": {"generations": 2}, "final": {"retrain": {"top_k": 0}}}


def _snapshot(run_dir: Path) -> dict[str, tuple[bytes, int]]:
    """Every file's bytes and modification time."""
    return {str(p.relative_to(run_dir)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    config = write_yaml(root / "tiny.yaml", **SECTIONS)
    assert main(["run", str(config), "--run-dir", str(root / "run")]) == 0
    return root / "run"


def test_run_prints_where_the_run_is_and_report_writes_pngs_and_html(run_dir, capsys):
    capsys.readouterr()
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"report: {run_dir / 'report' / 'index.html'}" in out
    pngs = sorted(p.name for p in (run_dir / "report").glob("*.png"))
    assert pngs == ["architecture.png", "genes.png", "lineage.png", "pareto_flops.png",
                    "pareto_params.png", "progress.png"]
    assert all((run_dir / "report" / p).stat().st_size > 1000 for p in pngs)
    html = (run_dir / "report" / "index.html").read_text()
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)  # plotly.js inline
    assert markup.count("data:image/png;base64,") == 6 and "<html" in html.lower()
    # Resuming a finished run does no more work and changes no row.
    before = _snapshot(run_dir)["history.sqlite"][0]
    assert main(["resume", str(run_dir)]) == 0
    assert "search: 2 generations, 8 evaluations" in capsys.readouterr().out
    assert _snapshot(run_dir)["history.sqlite"][0] == before


def _fails(capsys, argv, expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("evonas: error: "), err
    assert expected in err, err
    return err


def test_bad_config_key_and_type_exit_2(tmp_path, capsys):
    _fails(capsys, ["run", "--set", "serch.generations=2", "--run-dir", str(tmp_path / "x")],
           "did you mean 'search'")
    _fails(capsys, ["run", "--set", "search.population_size=many", "--run-dir",
                    str(tmp_path / "x")], "search.population_size must be an integer")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stesp: 3\n")
    _fails(capsys, ["run", str(bad), "--run-dir", str(tmp_path / "x")], "did you mean 'steps'")
    _fails(capsys, ["run", str(tmp_path / "missing.yaml")], "missing.yaml")
    assert not (tmp_path / "x").exists()  # nothing was created for a bad config


def test_run_dir_of_another_experiment_is_left_untouched(run_dir, tmp_path, capsys):
    before = _snapshot(run_dir)
    config = write_yaml(tmp_path / "other.yaml", **SECTIONS, train={"steps": 21})
    _fails(capsys, ["run", str(config), "--run-dir", str(run_dir)], "holds another experiment")
    _fails(capsys, ["run", str(config), "--run-dir", str(run_dir / "config.yaml")], "is a file")
    assert _snapshot(run_dir) == before


def test_resume_without_checkpoint_or_run_exits_2(tmp_path, capsys):
    from evonas.experiment import ExperimentConfig

    config = ExperimentConfig.from_dict(tiny_dict(**SECTIONS))
    empty = RunDir.create(tmp_path / "new", config.to_dict(), config.fingerprint(),
                          fingerprint_version=3)
    empty.close()
    before = _snapshot(tmp_path / "new")
    _fails(capsys, ["resume", str(tmp_path / "new")], "no checkpoint in")
    assert _snapshot(tmp_path / "new") == before
    _fails(capsys, ["resume", str(tmp_path / "nowhere")], "no run directory at")
    (tmp_path / "plain").mkdir()
    _fails(capsys, ["report", str(tmp_path / "plain")], "is not an evonas run directory")


def test_unwritable_run_dir_exits_2(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", **SECTIONS)
    # /sys refuses new entries even for root, as a read-only or full disk would.
    _fails(capsys, ["run", str(config), "--run-dir", "/sys/evonas-run"],
           "can't write the run directory /sys/evonas-run")


def test_tensorboard_without_tensorboardx_is_a_clear_error(tmp_path, capsys):
    config = write_yaml(tmp_path / "tiny.yaml", **SECTIONS)
    _fails(capsys, ["run", str(config), "--run-dir", str(tmp_path / "tb"), "--set",
                    "display.tensorboard=true"], "needs the tensorboardX package")
    assert not (tmp_path / "tb").exists()
