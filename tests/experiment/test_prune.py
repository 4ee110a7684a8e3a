"""Pruning with fine-tuning: the encodings' structured hooks, magnitude masks and their
schedule, the final-stage option and ``evonas prune``."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from evonas.cli import main
from evonas.experiment import Experiment, ExperimentConfig
from evonas.genomes import get_encoding
from evonas.report import write_report
from evonas.store import load_model
from evonas.train import TrainConfig, train_module
from evonas.train.prune import count_nonzero, count_params, cubic_schedule, magnitude_masks
from tests.experiment_configs import tiny_config, tiny_dict

CONV = {"input_shape": (24, 1), "num_classes": 3, "max_layers": 4, "widths": (4, 8, 16),
        "ops": ("conv3", "dwsep5", "maxpool3", "identity"), "stem_width": 8}


def _init(encoding, genome):
    module, _ = encoding.build(np.asarray(genome, np.int32))
    x = np.zeros((1, *encoding.input_shape), np.float32)
    return module, jax.tree.map(np.array, module.init(jax.random.key(0), x))


def _genomes(encoding, n=12, seed=0):
    return np.asarray(encoding.space.sample(jax.random.key(seed), n))


@pytest.mark.parametrize("name, options", [
    ("mlp", {"input_shape": (12,), "num_classes": 3, "widths": (8, 16, 32), "max_layers": 3}),
    ("conv", CONV),
    ("conv", {**CONV, "norm": "layer", "head": "flatten"}),
    ("conv", {**CONV, "head": "flatten", "head_hidden": 6}),
])
def test_structured_pruning_gives_a_genome_of_the_space_whose_costs_are_its_weights(name,
                                                                                    options):
    encoding = get_encoding(name, **options)
    for genome in _genomes(encoding):
        module, variables = _init(encoding, genome)
        base = float(encoding.cost(genome)["params"])
        smaller, cut = encoding.prune_channels(genome, variables, 0.5)
        encoding.space.validate(smaller)  # an ordinary genome of the same space
        small_module, _ = encoding.build(smaller)
        want = jax.eval_shape(small_module.init, jax.random.key(0),
                              np.zeros((1, *encoding.input_shape), np.float32))
        assert jax.tree.structure(want) == jax.tree.structure(cut)
        assert [a.shape for a in jax.tree.leaves(want)] == [np.shape(b) for b in
                                                             jax.tree.leaves(cut)]
        analytic = float(encoding.cost(smaller)["params"])
        assert analytic == count_params(cut)
        # Half the parameters unless the narrowest choices can't go that low.
        narrowest = float(encoding.cost(_narrowest(encoding, genome))["params"])
        assert analytic <= max(0.5 * base, narrowest)


@pytest.mark.parametrize("name, options", [
    ("mlp", {"input_shape": (12,), "num_classes": 3, "widths": (8, 16, 32), "max_layers": 3}),
    ("conv", CONV),
])
def test_the_shrink_is_the_widest_that_meets_the_budget(name, options):
    """The first ratio r (from just below 1 down) whose shrunk widths meet the budget wins: the
    same genome as trying each r in turn with the encoding's own cost."""
    from evonas.genomes import _pruning

    encoding = get_encoding(name, **options)
    cost = jax.jit(lambda g: encoding.cost(g)["params"])
    widths = np.asarray(encoding.widths, np.float64)
    for genome in _genomes(encoding, n=4, seed=1):
        genes = ([1 + 2 * i for i in range(int(genome[0]) + 1)] if name == "mlp" else
                 [5 * i + 2 for i, op, *_ in encoding._layers_of(genome)
                  if op.startswith(("conv", "dwsep"))])
        for sparsity in (0.3, 0.6):
            target = (1.0 - sparsity) * float(cost(genome))
            want = np.array(genome)
            for r in np.linspace(1.0, 0.0, 101)[1:]:
                want = np.array(genome)
                for pos in genes:
                    allowed = np.flatnonzero(widths <= max(r * widths[genome[pos]],
                                                           widths.min()) + 1e-9)
                    want[pos] = allowed[np.argmax(widths[allowed])]
                if float(cost(want)) <= target:
                    break
            got = _pruning.shrink_genome(encoding, genome, genes, sparsity)
            np.testing.assert_array_equal(got, want)


def _narrowest(encoding, genome):
    g = np.array(genome)
    narrow = int(np.argmin(encoding.widths))
    if encoding.name == "mlp":
        g[1::2] = narrow
    else:
        g.reshape(-1, 5)[:, 2] = narrow
    return g


def test_the_units_removed_are_those_with_the_smallest_norms():
    """Dead units (zero incoming weights and bias: ReLU gives 0) are what a prune removes, so the
    pruned MLP computes exactly the same logits."""
    encoding = get_encoding("mlp", input_shape=(6,), num_classes=3, widths=(2, 4), max_layers=2,
                            activations=("relu",))
    genome = np.asarray([1, 1, 0, 1, 0], np.int32)  # two layers of 4 units
    module, variables = _init(encoding, genome)
    params = variables["params"]
    for layer in ("dense_0", "dense_1"):
        params[layer]["kernel"][:, [1, 3]] = 0.0
        params[layer]["bias"][[1, 3]] = 0.0
        params[layer]["kernel"][:, [0, 2]] += 0.5  # the live units are clearly larger
    smaller, cut = encoding.prune_channels(genome, variables, 0.5)
    assert [encoding.widths[w] for w in smaller[1::2]] == [2, 2]
    small_module, _ = encoding.build(smaller)
    x = np.asarray(jax.random.normal(jax.random.key(1), (5, 6)))
    np.testing.assert_allclose(small_module.apply(cut, x), module.apply(variables, x),
                               rtol=1e-6, atol=1e-6)


def test_magnitude_masks_and_the_cubic_schedule():
    variables = {"params": {"kernel": np.arange(1, 101, dtype=np.float32).reshape(10, 10)
                            * np.where(np.arange(100).reshape(10, 10) % 2, -1, 1),
                            "bias": np.ones(10, np.float32)}}
    masks = magnitude_masks(variables, 0.3)
    kernel = masks["params"]["kernel"]
    assert kernel.sum() == 70 and np.all(kernel.ravel()[:30] == 0)  # the 30 smallest |w|
    assert np.all(masks["params"]["bias"] == 1)
    schedule = cubic_schedule(0.8, 300)
    steps, values = zip(*schedule)
    assert steps[0] == 0 and steps[-1] < 200 and list(steps) == sorted(steps)
    assert values[-1] == pytest.approx(0.8) and list(values) == sorted(values)


def test_fine_tuning_on_a_schedule_ends_at_the_sparsity_and_keeps_it():
    encoding = get_encoding("mlp", input_shape=(8,), num_classes=3, widths=(16,), max_layers=2)
    genome = np.asarray([1, 0, 0, 0, 0], np.int32)
    module, variables = _init(encoding, genome)
    x = np.asarray(jax.random.normal(jax.random.key(2), (64, 8)))
    y = np.asarray(jax.random.randint(jax.random.key(3), (64,), 0, 3))
    tuned = train_module(jax.random.key(4), module, x, y, TrainConfig(batch_size=16), 30,
                         init=variables, sparsity_schedule=cubic_schedule(0.75, 30))
    for leaf in jax.tree.leaves(tuned):
        if np.ndim(leaf) >= 2:
            assert np.mean(np.asarray(leaf) == 0) == pytest.approx(0.75, abs=1 / np.size(leaf))
    assert count_nonzero(tuned) < 0.3 * count_params(tuned) + 16 + 16 + 3


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("prune") / "run"
    config = tiny_config(final={"retrain": {"top_k": 1, "steps": 60},
                                "prune": {"mode": "structured", "sparsity": 0.5, "steps": 20}},
                         encoding={"options": {"max_layers": 2, "widths": [8, 16, 32]}})
    Experiment(config, run_dir=run_dir).run()
    return run_dir


def test_the_final_stage_prunes_and_exports_an_ordinary_architecture(pruned_run):
    final = json.loads((pruned_run / "best" / "final.json").read_text())
    summary = json.loads((pruned_run / "pruned" / "prune.json").read_text())
    assert final["pruning"] == summary and summary["mode"] == "structured"
    before, after = summary["before"], summary["after"]
    assert before["test_acc"] == final["best_test_acc"]
    encoding = get_encoding("mlp", input_shape=(64,), num_classes=10, max_layers=2,
                            widths=(8, 16, 32))
    narrowest = float(encoding.cost(_narrowest(encoding, before["genome"]))["params"])
    assert after["params"] == after["analytic_params"] <= max(0.5 * before["params"], narrowest)
    _, variables, info = load_model(pruned_run / "pruned")
    assert info["genome"] == after["genome"] and count_params(variables) == after["params"]
    assert info["prune_mode"] == "structured" and info["test_acc"] == after["test_acc"]
    assert after["latency_ms"] > 0 and after["flops"] < before["flops"]
    page = write_report(pruned_run)["html"].read_text()
    assert "<h2>Pruning</h2>" in page and "after fine-tuning" in page


def test_evonas_prune_unstructured_masks_the_same_architecture(pruned_run, capsys):
    code = main(["prune", str(pruned_run), "--mode", "unstructured", "--sparsity", "0.7",
                 "--steps", "15", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["mode"] == "unstructured"
    assert out["after"]["genome"] == out["before"]["genome"]
    assert out["after"]["params"] == out["before"]["params"]
    assert out["after"]["nonzero_params"] < 0.4 * out["before"]["params"]


@pytest.mark.parametrize("argv, message", [
    (["--sparsity", "1.0"], "prune sparsity must be a number in (0, 1); got 1.0"),
    (["--sparsity", "0"], "prune sparsity must be a number in (0, 1); got 0.0"),
    (["--source", "distilled"], "has no exported distilled model to prune"),
])
def test_bad_prune_arguments_are_one_line(pruned_run, capsys, argv, message):
    before = (pruned_run / "pruned" / "prune.json").read_bytes()
    code = main(["prune", str(pruned_run), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert (pruned_run / "pruned" / "prune.json").read_bytes() == before


def test_a_bad_prune_config_is_one_line():
    for final, message in [({"prune": {"mode": "lottery"}}, "final.prune.mode must be one of "),
                           ({"prune": {"sparsity": 1.5}},
                            r"final.prune.sparsity must be a number in \(0, 1\); got 1.5"),
                           ({"prune": "lottery"}, "final.prune.mode must be one of ")]:
        with pytest.raises(ValueError, match=message):
            ExperimentConfig.from_dict(tiny_dict(final=final))
