"""Export for serving: StableHLO with the parameters baked in, served by a process that
imports only JAX."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evonas.cli import main
from evonas.data import load_dataset
from evonas.experiment import Experiment
from evonas.experiment.components import build_model_parts
from evonas.store import load_model
from evonas.train import predict_logits
from tests.experiment_configs import tiny_config

ROOT = Path(__file__).resolve().parents[2]
# Runs the example with evonas, flax and optax made unimportable: what a serving process has.
BLOCKED = """
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("evonas", "flax", "optax", "orbax"):
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.fixture(scope="module", params=["mlp", "conv"])
def exported(request, tmp_path_factory):
    encoding = ({"name": "conv", "options": {"max_layers": 2, "widths": [4, 8]}}
                if request.param == "conv" else {})
    config = tiny_config(final={"retrain": {"top_k": 1, "steps": 20}},
                         **({"encoding": encoding} if encoding else {}))
    if request.param == "conv":
        config = config.with_overrides(["dataset.name=mnist1d", "dataset.limit=300",
                                        "train.plan=grouped"])
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    Experiment(config, run_dir=run_dir).run()
    assert main(["export", str(run_dir), "--platforms", "cpu,cuda"]) == 0
    return run_dir, config


def test_the_file_is_written_with_what_a_server_needs(exported):
    run_dir, _ = exported
    info = json.loads((run_dir / "best" / "serving.json").read_text())
    assert (run_dir / "best" / "model.stablehlo").stat().st_size > 0
    assert info["input_shape"][0] == "batch" and info["output"] == "logits"
    assert info["platforms"] == ["cpu", "cuda"]
    standardize = info["preprocessing"]["standardize"]
    assert len(standardize["mean"]) == len(standardize["std"]) == info["input_shape"][-1]
    assert info["input"].startswith("raw")


def _raw_test_inputs(config):
    """The test split as the data is, before the run standardised it."""
    return load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                        seed=config.dataset.seed, limit=config.dataset.limit,
                        normalize=False).x_test


def test_a_process_without_evonas_serves_raw_inputs_as_the_run_scored_them(exported, tmp_path):
    """The program takes the data as it is: on raw inputs it gives the logits the bare module
    gives on the standardised inputs the run tested with."""
    run_dir, config = exported
    dataset, _, _ = build_model_parts(config)
    module, variables, info = load_model(run_dir, preprocess=False)
    want = predict_logits(module, variables, dataset.x_test)
    assert np.mean(want.argmax(-1) == dataset.y_test) == pytest.approx(info["test_acc"])
    raw = _raw_test_inputs(config)
    assert not np.allclose(raw, dataset.x_test)
    served, _, _ = load_model(run_dir)  # takes raw inputs too
    assert np.max(np.abs(predict_logits(served, variables, raw) - want)) < 1e-4
    np.save(tmp_path / "x.npy", raw)
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(ROOT / "examples" / "serve_stablehlo.py"),
         str(run_dir / "best" / "model.stablehlo"), "--input", str(tmp_path / "x.npy"),
         "--output", str(tmp_path / "y.npy")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.load(tmp_path / "y.npy")
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4  # standardised in float32 inside the program
    # Any batch size: the batch dimension is symbolic.
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED, str(ROOT / "examples" / "serve_stablehlo.py"),
         str(run_dir / "best" / "model.stablehlo"), "--input", str(tmp_path / "x.npy")],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["classes"] == np.argmax(want, axis=-1).tolist()


def test_bad_export_input_is_one_line(exported, tmp_path, capsys):
    run_dir, _ = exported
    (tmp_path / "empty").mkdir()
    cases = [([str(tmp_path / "empty")], "holds no exported model"),
             ([str(run_dir), "--platforms", "metal"], "platforms=['metal'] is not allowed")]
    for argv, message in cases:
        code = main(["export", *argv])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1
