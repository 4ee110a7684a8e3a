"""Fine-tuning a found network on new data (``evonas finetune``): every mode through the command
line on real files, what trains and what stays frozen, the new head and its class names, the
export, determinism and the one-line refusals."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from flax import traverse_util
from sklearn.datasets import load_digits

from evonas.cli import main
from evonas.experiment import Experiment
from evonas.experiment.finish.finetune import check_linear, features_fn, head_paths
from evonas.genomes import get_encoding
from evonas.store import load_model
from evonas.train import accuracy, predict_logits
from tests.experiment_configs import tiny_config, write_yaml


def _npz(path, x, y):
    np.savez(path, x_train=x[:-60], y_train=y[:-60], x_test=x[-60:], y_test=y[-60:])
    return path


def _flat(tree):
    return traverse_util.flatten_dict({k: v for k, v in tree.items()})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run searched on digits 0-4 (an .npz), and the data of two new tasks: digits 5-9 (other
    classes) and digits 0-4 again (the same task)."""
    root = tmp_path_factory.mktemp("finetune")
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    low, high = y < 5, y >= 5
    old = _npz(root / "digits_0_4.npz", x[low], y[low])
    new = _npz(root / "digits_5_9.npz", x[high], y[high])
    # two hidden layers for sure (one layer has at most 2,208 multiply-adds here), so the last
    # block is not the whole network
    config = tiny_config(dataset={"name": "npz", "path": str(old), "limit": None},
                         search={"constraints": ["flops >= 2400"]},
                         final={"retrain": {"top_k": 1, "steps": 150}})
    Experiment(config, run_dir=root / "run").run()
    return root / "run", old, new


def _finetune(run_dir, data, *argv):
    code = main(["finetune", str(run_dir), "--data", str(data), "--json", *argv])
    assert code == 0
    return code


def test_every_mode_trains_what_it_says_and_exports_the_new_classes(runs, capsys):
    run_dir, _, new = runs
    _, source, info = load_model(run_dir / "best", preprocess=False)
    assert info["class_names"] == ["0", "1", "2", "3", "4"]
    out = {}
    for mode, extra in [("full", []), ("last", ["--blocks", "1"]), ("head", []),
                        ("probe", []), ("scratch", [])]:
        _finetune(run_dir, new, "--mode", mode, "--steps", "40", *extra)
        out[mode] = json.loads(capsys.readouterr().out)
    label = {"last": "last1"}
    head = {p for p in _flat(source) if p[1] == "head"}
    for mode, summary in out.items():
        directory = run_dir / "finetuned" / label.get(mode, mode)
        assert json.loads((directory / "finetune.json").read_text()) == summary
        module, tuned, exported = load_model(directory, preprocess=False)
        assert exported["class_names"] == ["5", "6", "7", "8", "9"]
        assert exported["finetune_mode"] == label.get(mode, mode)
        assert summary["new_head"] == (mode != "scratch")
        # the exported model is the one tested: its test accuracy, on the new test split
        data = np.load(new)
        prep = exported["preprocessing"]
        mean, std = (np.asarray(prep["standardize"][k], np.float32) for k in ("mean", "std"))
        logits = predict_logits(module, tuned, (data["x_test"] * prep["scale"] - mean) / std)
        assert accuracy(logits, data["y_test"] - 5) == pytest.approx(summary["test_acc"])
        flat = _flat(tuned)
        body = {p: a for p, a in _flat(source).items() if p not in head}
        if mode in ("head", "probe"):  # frozen: the pretrained parameters, bit for bit
            assert all(np.array_equal(flat[p], a) for p, a in body.items())
            assert summary["trainable_params"] == sum(np.size(flat[p]) for p in flat
                                                      if p[1] == "head")
        else:
            assert not all(np.array_equal(flat[p], a) for p, a in body.items())
    assert out["last"]["blocks_in_network"] == ["dense_0", "dense_1"]
    last = out["last"]["blocks_in_network"][-1]  # only the last block moved, and the head
    flat = _flat(load_model(run_dir / "finetuned" / "last1", preprocess=False)[1])
    sizes = {p: np.size(a) for p, a in flat.items()}
    assert out["last"]["trainable_params"] == sum(n for p, n in sizes.items()
                                                  if p[1] in ("head", last))
    assert out["head"]["trainable_params"] < out["last"]["trainable_params"] < out[
        "full"]["trainable_params"] == out["full"]["params"] == out["scratch"]["params"]
    for p, a in _flat(source).items():
        if p not in head:
            assert np.array_equal(flat[p], a) == (p[1] != last), p
    # a network trained on digits 0-4 gives features that separate 5-9 far above chance (0.2)
    assert out["probe"]["test_acc"] > 0.6 and out["head"]["test_acc"] > 0.6


def test_a_new_head_starts_from_the_linear_probe_unless_asked_fresh(runs, capsys, monkeypatch):
    """LP-FT: in full, last and head a new head starts from the probe's fit (the same fit as
    mode=probe, bit for bit), and from a random initialisation with --head-init fresh."""
    import evonas.experiment.finish.finetune as finetune

    run_dir, _, new = runs
    _finetune(run_dir, new, "--mode", "probe", "--steps", "30", "--seed", "5")
    probe = json.loads(capsys.readouterr().out)
    assert probe["head_init"] == "probe" and probe["probe_steps"] == 30
    probed = {p: a for p, a in _flat(load_model(run_dir / "finetuned" / "probe",
                                                preprocess=False)[1]).items() if p[1] == "head"}
    # training that returns its start, so the exported head is the head training began from
    monkeypatch.setattr(finetune, "train_module", lambda *a, init, **k: init)
    starts = {}
    for init in ("auto", "probe", "fresh"):
        _finetune(run_dir, new, "--mode", "head", "--steps", "30", "--seed", "5",
                  "--head-init", init)
        summary = json.loads(capsys.readouterr().out)
        assert summary["head_init"] == ("fresh" if init == "fresh" else "probe")
        assert summary["probe_steps"] == (0 if init == "fresh" else 30)
        flat = _flat(load_model(run_dir / "finetuned" / "head", preprocess=False)[1])
        starts[init] = {p: flat[p] for p in probed}
    for init in ("auto", "probe"):
        assert all(np.array_equal(starts[init][p], a) for p, a in probed.items())
    assert not any(np.array_equal(starts["fresh"][p], a) for p, a in probed.items()
                   if np.ndim(a) == 2)


def test_the_same_task_keeps_the_head_and_the_weights_transfer_exactly(runs, capsys):
    run_dir, old, _ = runs
    final = json.loads((run_dir / "best" / "final.json").read_text())
    _finetune(run_dir, old, "--mode", "head", "--steps", "1", "--learning-rate", "1e-12")
    out = json.loads(capsys.readouterr().out)
    assert out["new_head"] is False and out["head_init"] == "pretrained"
    # one step at a vanishing rate: the source network itself, on its own test split
    assert out["test_acc"] == pytest.approx(final["best_test_acc"], abs=1e-9)


def test_fine_tuning_is_deterministic(runs, capsys):
    run_dir, _, new = runs
    params = []
    for _ in range(2):
        _finetune(run_dir, new, "--mode", "last", "--blocks", "2", "--steps", "15",
                  "--seed", "3")
        capsys.readouterr()
        params.append(load_model(run_dir / "finetuned" / "last2", preprocess=False)[1])
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params[0]),
                                                    jax.tree.leaves(params[1])))


def test_the_final_stage_fine_tunes_the_deployed_network_and_resumes_it(runs, tmp_path,
                                                                         capsys):
    """``final.finetune`` through ``evonas run`` and ``evonas resume``: the step computes what
    ``evonas finetune`` computes on the same search, and a resume that finds its result
    missing does it again, identically."""
    searched, old, new = runs
    path = write_yaml(tmp_path / "exp.yaml",
                      dataset={"name": "npz", "path": str(old), "limit": None},
                      search={"constraints": ["flops >= 2400"]},
                      final={"retrain": {"top_k": 1, "steps": 150},
                             "finetune": {"data": str(new), "mode": "probe", "steps": 40}})
    run_dir = tmp_path / "run"
    assert main(["run", str(path), "--run-dir", str(run_dir)]) == 0
    result = run_dir / "finetuned" / "probe" / "finetune.json"
    summary = json.loads(result.read_text())
    assert summary["source"] == "best" and summary["data"]["classes"] == ["5", "6", "7", "8", "9"]
    capsys.readouterr()
    _finetune(searched, new, "--mode", "probe", "--steps", "40")  # the same search, by hand
    assert json.loads(capsys.readouterr().out)["test_acc"] == summary["test_acc"]
    result.unlink()
    assert main(["resume", str(run_dir)]) == 0
    assert json.loads(result.read_text())["test_acc"] == summary["test_acc"]


@pytest.mark.parametrize("finetune, message", [
    ({"data": "/nowhere/new.npz"}, "final.finetune.data: '/nowhere/new.npz' does not exist"),
    ({"data": "fashon_mnist"}, "fashion_mnist"),
    ({"data": "x.npz", "source": "distilled"}, "final.finetune.source=distilled needs "
                                               "final.distil, which is null"),
    ({"data": "x.npz", "mode": "lottery"}, "final.finetune.mode"),
    ({"data": "x.npz", "head_init": "warm"}, "final.finetune.head_init must be one of"),
    ({"data": "x.npz", "body_lr_scale": 2}, "final.finetune.body_lr_scale must be in (0, 1]"),
    ({"data": ""}, "final.finetune.data must name the new data"),
])
def test_a_bad_final_finetune_is_one_line_before_anything_is_created(tmp_path, finetune,
                                                                      message):
    run_dir = tmp_path / "run"
    with pytest.raises(ValueError) as err:
        config = tiny_config(final={"finetune": finetune})
        Experiment(config, run_dir=run_dir).run()
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not run_dir.exists()


def test_the_head_is_what_depends_on_the_number_of_classes():
    options = {"input_shape": (28, 28, 1), "num_classes": 10, "max_layers": 3,
               "widths": (8, 16), "stem_width": 8, "ops": ("conv3", "identity")}
    assert head_paths("conv", options, [0] * 15) == {("params", "head_kernel"),
                                                    ("params", "head_bias")}
    mlp = {"input_shape": (64,), "num_classes": 5, "max_layers": 2, "widths": (16, 32)}
    genome = get_encoding("mlp", **mlp).space.sample(jax.random.key(0), 1)[0]
    assert head_paths("mlp", mlp, genome) == {("params", "head", "kernel"),
                                              ("params", "head", "bias")}


def test_a_flattening_head_is_a_linear_head_for_the_probe():
    """The probe reads a ``[positions, channels, classes]`` head as ``[features, classes]``: its
    features times the flattened kernel give the network's logits."""
    options = {"input_shape": (8, 8, 1), "num_classes": 3, "max_layers": 2, "widths": (4,),
               "stem_width": 4, "ops": ("conv3",), "reductions": (0,), "head": "flatten"}
    genome = np.asarray([1, 0, 0, 0, 0] * 2, np.int32)  # two conv3 layers of 4 channels
    encoding = get_encoding("conv", **options)
    module, _ = encoding.build(genome)
    x = np.asarray(jax.random.normal(jax.random.key(0), (5, 8, 8, 1)))
    variables = module.init(jax.random.key(1), x)
    variables = jax.tree.map(lambda a: a + 0.1, variables)  # a non-zero bias too
    head = head_paths("conv", options, genome)
    assert np.shape(variables["params"]["head_kernel"]) == (16, 4, 3)
    features = features_fn("conv", options, genome, variables, head)
    assert features(x).shape == (5, 64)
    check_linear(features, module, variables, head, x)  # raises if the logits disagree


def test_a_hidden_head_layer_is_body_and_the_probe_reads_its_units():
    """With ``head_hidden`` the head (what depends on the classes) is the ``[hidden, classes]``
    kernel and its bias; the hidden layer is part of the body, and the probe's features are
    its ReLU units."""
    options = {"input_shape": (8, 8, 1), "num_classes": 3, "max_layers": 2, "widths": (4,),
               "stem_width": 4, "ops": ("conv3",), "reductions": (0,), "head": "flatten",
               "head_hidden": 6}
    genome = np.asarray([1, 0, 0, 0, 0] * 2, np.int32)
    encoding = get_encoding("conv", **options)
    module, _ = encoding.build(genome)
    x = np.asarray(jax.random.normal(jax.random.key(0), (5, 8, 8, 1)))
    variables = jax.tree.map(lambda a: a + 0.1, module.init(jax.random.key(1), x))
    head = head_paths("conv", options, genome)
    assert head == {("params", "head_kernel"), ("params", "head_bias")}
    assert np.shape(variables["params"]["head_hidden"]["kernel"]) == (16, 4, 6)
    features = features_fn("conv", options, genome, variables, head)
    assert features(x).shape == (5, 6) and float(features(x).min()) >= 0.0  # ReLU units
    check_linear(features, module, variables, head, x)


@pytest.mark.parametrize("argv, message", [
    (["--mode", "last", "--blocks", "9"], "finetune blocks=9: this network has "),
    (["--steps", "0"], "finetune steps must be"),
    (["--mode", "lottery"], "finetune mode must be one of"),
    (["--body-lr-scale", "0"], "finetune body_lr_scale must be in (0, 1]; got 0.0"),
    (["--head-init", "warm"], "finetune head_init must be one of"),
    (["--source", "pruned"], "has no exported model at 'pruned' to fine-tune"),
    (["--source", "../.."], "has no exported model at '../..' to fine-tune"),
])
def test_bad_finetune_arguments_are_one_line_and_write_nothing(runs, capsys, argv, message):
    run_dir, _, new = runs
    before = sorted(p.name for p in (run_dir / "finetuned").glob("*")) if (
        run_dir / "finetuned").exists() else []
    code = main(["finetune", str(run_dir), "--data", str(new), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    after = sorted(p.name for p in (run_dir / "finetuned").glob("*")) if (
        run_dir / "finetuned").exists() else []
    assert after == before


def test_data_of_another_shape_is_refused_in_one_line(runs, tmp_path, capsys):
    run_dir, _, _ = runs
    x = np.random.default_rng(0).normal(size=(200, 10)).astype(np.float32)
    y = np.arange(200) % 3
    data = _npz(tmp_path / "wide.npz", x, y)
    code = main(["finetune", str(run_dir), "--data", str(data)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "finetune data: examples of shape [10], but the network takes [64]" in err
