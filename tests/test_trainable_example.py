"""examples/trainable_encoding.py: a plug-in's trainable space, exact like the built-ins, and run
end to end from its YAML through the plug-in path (the YAML's ``plugins`` key)."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

import evonas
from evonas.experiment.plugins import load_plugin
from tests.genomes.test_mlp import _check_costs, _check_exactness, _check_gradients

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLE = load_plugin(str(ROOT / "examples" / "trainable_encoding.py"))
ENC = evonas.get_encoding("gated_mlp", input_shape=(6, 2), num_classes=4, depth=3,
                          widths=(4, 8))
X = jax.random.normal(jax.random.key(1), (5, 6, 2))
LABELS = jnp.arange(5) % 4


def test_the_example_is_a_registered_trainable_encoding():
    assert isinstance(ENC, EXAMPLE.GatedMLPEncoding)
    assert evonas.check_trainable(ENC) is ENC
    assert isinstance(ENC, evonas.TrainableEncoding)


def test_supernet_equals_the_standalone_build_like_the_built_ins():
    genomes = np.stack([ENC.space.from_index(i) for i in range(0, ENC.space.size, 5)])
    assert _check_exactness(ENC, genomes, X, jax.random.key(0)) < 1e-5
    _check_costs(ENC, genomes, X, jax.random.key(0))
    glu = ENC.space.from_dict({**{f"width_{i}": 8 for i in range(3)},
                               **{f"unit_{i}": "glu" for i in range(3)}})
    _check_gradients(ENC, glu, X, LABELS, jax.random.key(2))
    _check_gradients(ENC, genomes[1], X, LABELS, jax.random.key(3))


def test_the_yaml_runs_end_to_end(tmp_path):
    from evonas.cli import main

    run_dir = tmp_path / "run"
    code = main(["run", str(ROOT / "examples" / "trainable_encoding.yaml"),
                 "--run-dir", str(run_dir), "--set", "search.generations=2",
                 "--set", "search.population_size=4", "--set", "strategy.params.population_size=4",
                 "--set", "strategy.params.sample_size=2", "--set", "train.steps=30",
                 "--set", "final.retrain.steps=60", "--set", "dataset.limit=600",
                 "--set", "display.progress=false"])
    assert code == 0
    final = json.loads((run_dir / "best" / "final.json").read_text())
    assert len(final["models"]) == 2 and all(0.0 < m["test_acc"] <= 1.0 for m in final["models"])
    module, variables, info = evonas.load_model(run_dir)
    assert info["encoding"] == "gated_mlp" and info["encoding_options"]["depth"] == 3
    logits = module.apply(variables, jnp.zeros((2, 40, 1)))
    assert logits.shape == (2, 10)
    assert (run_dir / "report" / "index.html").is_file()
