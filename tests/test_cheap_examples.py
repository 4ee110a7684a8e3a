"""The cheap-evaluation examples run end to end from their YAMLs: searched cheaply, the top
retrained from scratch, tested, exported, and a report that says how each fitness was estimated."""

from __future__ import annotations

import json
import pathlib
import re

import jax.numpy as jnp
import numpy as np
import pytest

import evonas
from evonas.store import History

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = ["search.generations=3", "search.population_size=4", "strategy.params.population_size=4",
        "strategy.params.sample_size=2", "train.steps=20", "final.retrain.steps=40",
        "final.retrain.top_k=2", "dataset.limit=400", "display.progress=false",
        # the examples' conv space, two layer slots of two widths (its supernet traces and
        # compiles in half the time of the default four slots)
        "encoding.options.max_layers=2", "encoding.options.widths=[8, 16]"]
# example: (its own settings scaled down, the estimates its history must hold)
EXAMPLES = {
    "successive_halving.yaml": (["evaluator.halving.rungs=[5, 10]",
                                 "evaluator.halving.eta=2"], {"trained"}),
    "weight_inheritance.yaml": (["evaluator.inherit.steps=5"], {"trained", "inherited"}),
    "oneshot.yaml": (["evaluator.supernet_steps=20", "train.steps_per_call=5"], {"oneshot"}),
    "few_shot.yaml": (["evaluator.supernet_steps=20", "evaluator.options.split_steps=10",
                       "train.steps_per_call=5"], {"fewshot"}),
    "proxy_prefilter.yaml": ([], {"naswot+trained"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_the_example_runs_end_to_end_and_the_report_says_how_fitness_was_estimated(
        example, tmp_path):
    from evonas.cli import main

    settings, estimates = EXAMPLES[example]
    run_dir = tmp_path / "run"
    args = ["run", str(ROOT / "examples" / example), "--run-dir", str(run_dir)]
    for setting in [*TINY, *settings]:
        args += ["--set", setting]
    assert main(args) == 0
    with History(run_dir / "history.sqlite", readonly=True) as history:
        rows = history.rows()
    assert len(rows) == 12 and {r["estimate"] for r in rows} == estimates
    fidelities = {r["fidelity"] for r in rows}
    if example == "successive_halving.yaml":  # every rung is a fidelity some rows stopped at
        assert fidelities == {5, 10, 20}
    elif example == "weight_inheritance.yaml":
        assert fidelities == {5, 20}
    elif example in ("oneshot.yaml", "few_shot.yaml"):
        assert fidelities == {0}
    final = json.loads((run_dir / "best" / "final.json").read_text())
    assert len(final["models"]) == 2 and all(0.0 < m["test_acc"] <= 1.0 for m in final["models"])
    module, variables, info = evonas.load_model(run_dir)
    assert module.apply(variables, jnp.zeros((2, 40, 1))).shape == (2, 10)
    page = (run_dir / "report" / "index.html").read_text()
    summary = re.search(r"<b>fitness estimated by</b>: ([^<]*)</span>", page)
    assert summary, "the report's summary names how fitness was estimated"
    for estimate in estimates:
        assert estimate in summary.group(1)


@pytest.mark.slow
def test_the_fashion_mnist_example_searches_real_images_and_exports_a_model_for_raw_pixels(
        tmp_path):
    """examples/fashion_mnist.yaml, scaled down: the time-budgeted search on the real images
    (Debian's dataset-fashion-mnist), the image pipeline, the best retrained and exported with
    the class names; the exported model takes uint8 pixels as they are in the IDX files."""
    from evonas.cli import main
    from evonas.data.doors import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, read_idx

    run_dir = tmp_path / "run"
    args = ["run", str(ROOT / "examples" / "fashion_mnist.yaml"), "--run-dir", str(run_dir)]
    for setting in ["search.time_budget=null", "search.generations=1",
                    "search.population_size=4", "strategy.params.population_size=4",
                    "strategy.params.sample_size=2", "train.steps=6",
                    "evaluator.halving.rungs=[2]", "dataset.limit=300",
                    "encoding.options.max_layers=2", "encoding.options.widths=[8, 16]",
                    "encoding.options.reductions=[0]", "final.retrain.steps=10",
                    "display.progress=false"]:
        args += ["--set", setting]
    assert main(args) == 0
    with History(run_dir / "history.sqlite", readonly=True) as history:
        rows = history.rows()
    assert len(rows) == 4 and {r["fidelity"] for r in rows} <= {2, 6}
    module, variables, info = evonas.load_model(run_dir)
    assert info["class_names"] == list(FASHION_MNIST_CLASSES)
    images = pathlib.Path(FASHION_MNIST_DIR) / "t10k-images-idx3-ubyte.gz"
    pixels = read_idx(images)[:64, :, :, None]  # uint8, as in the file: the model scales them
    assert pixels.dtype == jnp.uint8
    logits = module.apply(variables, pixels)
    assert logits.shape == (64, 10) and bool(jnp.all(jnp.isfinite(logits)))
    final = json.loads((run_dir / "best" / "final.json").read_text())
    assert 0.0 < final["best_test_acc"] <= 1.0
    # fine-tuned to another task of the same images (5 other classes, a new head): the conv
    # network's head (global pooling, then a kernel) passes the probe's linearity check
    labels = read_idx(pathlib.Path(FASHION_MNIST_DIR) / "t10k-labels-idx1-ubyte.gz")
    pick = np.flatnonzero(np.asarray(labels) >= 5)[:400]
    x_new = np.asarray(read_idx(images))[pick, :, :, None]
    names = np.asarray(FASHION_MNIST_CLASSES)[np.asarray(labels)[pick]]
    np.savez(tmp_path / "new.npz", x_train=x_new[:300], y_train=names[:300],
             x_test=x_new[300:], y_test=names[300:])
    for mode in ("probe", "last"):
        assert main(["finetune", str(run_dir), "--data", str(tmp_path / "new.npz"), "--mode",
                     mode, "--steps", "5"]) == 0
        tuned = json.loads((run_dir / "finetuned" / {"last": "last1"}.get(mode, mode)
                            / "finetune.json").read_text())
        assert tuned["data"]["classes"] == sorted(FASHION_MNIST_CLASSES[5:])  # names, sorted
        assert tuned["new_head"] and 0.0 <= tuned["test_acc"] <= 1.0
