"""Single-path one-shot: the supernet under a sampled architecture computes that architecture's
standalone function; the supernet trains deterministically and resumes exactly from a kept
state; scoring needs no training; bad input fails in one line."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.data import load_dataset
from evonas.evaluators.oneshot import OneShotEvaluator
from evonas.experiment.plugins import load_plugin
from evonas.genomes.cell import CellEncoding
from evonas.genomes.conv import ConvEncoding
from evonas.genomes.mlp import MLPEncoding
from evonas.train import TrainConfig
from evonas.train.oneshot import path_forward, score_population, supernet_init, train_supernet

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENCODINGS = {
    "mlp": (MLPEncoding(input_shape=(6, 2), widths=(4, 8), max_layers=3), (6, 6, 2)),
    # Two layers, two widths: every op kind (conv, dwsep, pools, identity), residuals, 1-D.
    "conv": (ConvEncoding(input_shape=(9, 2), max_layers=2, widths=(4, 8), stem_width=4,
                          ops=("conv3", "conv5", "dwsep3", "maxpool3", "avgpool3", "identity"),
                          activations=("relu", "silu")), (5, 9, 2)),
    "conv2d": (ConvEncoding(input_shape=(6, 6, 1), max_layers=2, widths=(4, 8), stem_width=4,
                            ops=("conv3", "dwsep3", "avgpool3")), (3, 6, 6, 1)),
    # Layer norms: the single path normalises each op at its real width, the build likewise.
    "conv2d-norm": (ConvEncoding(input_shape=(6, 6, 1), max_layers=2, widths=(4, 8),
                                 stem_width=4, ops=("conv3", "dwsep3", "avgpool3", "identity"),
                                 norm="layer", head="flatten"), (3, 6, 6, 1)),
    "conv2d-hidden": (ConvEncoding(input_shape=(6, 6, 1), max_layers=2, widths=(4, 8),
                                   stem_width=4, ops=("conv3", "dwsep3", "maxpool3", "identity"),
                                   head="flatten", head_hidden=5), (3, 6, 6, 1)),
    "nb201": (CellEncoding(num_classes=3, input_size=8, channels=4, cells_per_stage=1),
              (4, 8, 8, 3)),
}


def _gated_mlp():
    module = load_plugin(str(ROOT / "examples" / "trainable_encoding.py"))
    return module.GatedMLPEncoding(input_shape=(6, 2), num_classes=4, depth=2, widths=(4, 8))


@pytest.mark.parametrize("name", list(ENCODINGS) + ["plug-in"])
def test_the_single_path_computes_the_standalone_architecture(name):
    encoding, x_shape = ENCODINGS[name] if name != "plug-in" else (_gated_mlp(), (5, 6, 2))
    if name == "plug-in":  # no single_path of its own: the masked supernet stands in
        assert not hasattr(encoding, "single_path")
    x = jax.random.normal(jax.random.key(0), x_shape)
    params = supernet_init(jax.random.key(1), encoding, np.asarray(x))
    # Trained-looking weights, not the init's exact zeros (biases), so every slice matters.
    params = jax.tree.map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(2), a.shape),
                          params)
    traces = []  # counted at trace time: one trace = one program for every architecture
    single = path_forward(encoding)

    def traced(params, genome, x):
        traces.append(1)
        return single(params, genome, x)

    forward = jax.jit(traced)
    genomes = np.asarray(encoding.space.sample(jax.random.key(3), 12))
    for genome in genomes:
        module, to_params = encoding.build(genome)
        want = module.apply({"params": to_params(params)}, x)
        got = forward(params, jnp.asarray(genome), x)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4,
                                   err_msg=str(encoding.describe(genome)))
    assert len(traces) == 1  # one program for every architecture


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit=300)


MLP = MLPEncoding(input_shape=(8, 8), widths=(16, 32), max_layers=2)
CONFIG = TrainConfig(steps=20, batch_size=32, steps_per_call=5, learning_rate=3e-3)


def test_the_supernet_resumes_exactly_from_a_kept_state(digits):
    key = jax.random.key(0)
    kept = []
    whole = train_supernet(key, MLP, digits, CONFIG, 40, save=kept.append, save_every=10)
    assert [int(s.step) for s in kept] == [10, 20, 30, 40]
    assert whole.loss < np.log(10)  # it learned something
    again = train_supernet(key, MLP, digits, CONFIG, 40)
    resumed = train_supernet(key, MLP, digits, CONFIG, 40, load=lambda like: kept[1])
    assert resumed.resumed_from == 20
    for a, b, c in zip(jax.tree.leaves(whole.params), jax.tree.leaves(again.params),
                       jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_scores_are_the_supernet_weights_accuracy(digits):
    result = train_supernet(jax.random.key(0), MLP, digits, CONFIG, 40)
    genomes = np.asarray(MLP.space.sample(jax.random.key(1), 5))
    scores = score_population(MLP, result.params, genomes, digits, 64)
    for i, genome in enumerate(genomes):
        module, to_params = MLP.build(genome)
        logits = module.apply({"params": to_params(result.params)}, digits.x_val)
        acc = float(np.mean(np.argmax(logits, -1) == digits.y_val))
        assert abs(scores["val_acc"][i] - acc) < 1e-6
    evaluator = OneShotEvaluator(MLP, digits, CONFIG, supernet_steps=40)
    results = evaluator.evaluate(jax.random.key(5), genomes)
    np.testing.assert_allclose(results.fitness, scores["val_acc"])
    assert (np.asarray(results.fidelity) == 0).all()
    assert evaluator.estimate == "oneshot"


def test_an_encoding_without_a_supernet_is_refused_in_one_line(digits):
    module = load_plugin(str(ROOT / "examples" / "custom_encoding.py"))
    encoding = next(v() for v in vars(module).values()
                    if isinstance(v, type) and getattr(v, "name", None) == "mobile")
    with pytest.raises(ValueError, match=r"^evaluator oneshot needs an encoding with a "
                                         r"weight-sharing supernet .* encoding 'mobile'") as info:
        OneShotEvaluator(encoding, digits, CONFIG)
    assert "\n" not in str(info.value)


def test_few_shot_splits_on_the_gene_that_moves_the_scores_and_scores_with_its_choice(
        digits, tmp_path):
    from evonas.evaluators.oneshot import FewShotEvaluator
    from evonas.store import ParamStore
    from evonas.train.fewshot import gene_importance

    store = ParamStore(tmp_path / "supernet", tmp_path)
    evaluator = FewShotEvaluator(MLP, digits, CONFIG, supernet_steps=40, split_steps=20,
                                 store=store)
    genomes = np.asarray(MLP.space.sample(jax.random.key(1), 9))
    results = evaluator.evaluate(jax.random.key(5), genomes)
    gene, subs = evaluator.gene, evaluator.subs
    cards = np.asarray(MLP.space.cardinalities)
    importance = gene_importance(MLP, evaluator.trained.params, digits,
                                 jax.random.split(jax.random.fold_in(evaluator.key, 1))[0],
                                 eval_batch_size=CONFIG.eval_batch_size)
    assert gene == int(np.nanargmax(importance)) and len(subs) == cards[gene]
    for sub in subs:  # each trained on from the one-shot weights
        assert any(not np.array_equal(a, b) for a, b in zip(
            jax.tree.leaves(sub), jax.tree.leaves(evaluator.trained.params)))
    for i, genome in enumerate(genomes):  # scored by its own choice's sub-supernet
        alone = score_population(MLP, subs[genome[gene]], genome[None], digits, 64)
        assert abs(float(results.fitness[i]) - float(alone["val_acc"][0])) < 1e-6
    assert evaluator.estimate == "fewshot" and evaluator.describe()["split_gene"] == gene

    # A resumed run loads the split and every sub-supernet: nothing trains again.
    again = FewShotEvaluator(MLP, digits, CONFIG, supernet_steps=40, split_steps=20,
                             store=store)
    import evonas.train.fewshot as fewshot

    def trains(*args, **kwargs):
        raise AssertionError("a kept split or sub-supernet was computed again")

    real = fewshot.gene_importance, fewshot.batch_indices  # a sub-supernet draws its batches
    fewshot.gene_importance = fewshot.batch_indices = trains
    try:
        np.testing.assert_array_equal(again.evaluate(jax.random.key(5), genomes).fitness,
                                      results.fitness)
    finally:
        fewshot.gene_importance, fewshot.batch_indices = real
    assert again.trained.resumed_from == 40  # the one-shot supernet came from the store


@pytest.mark.parametrize("options, message", [
    ({"split_steps": 0}, "FewShotEvaluator.split_steps"),
    ({"split": 99}, "FewShotEvaluator.split"),
    ({"max_choices": 1}, "FewShotEvaluator.max_choices"),
])
def test_few_shot_bad_options_are_one_line(digits, options, message):
    from evonas.evaluators.oneshot import FewShotEvaluator

    with pytest.raises(ValueError, match=message) as info:
        FewShotEvaluator(MLP, digits, CONFIG, supernet_steps=40, **options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("trainer", ["oneshot", "fewshot", "differentiable"])
def test_supernet_trainers_compile_with_the_trainers_kernel_options(digits, monkeypatch,
                                                                     trainer):
    """Under xla=fast the one-shot, few-shot and relaxed supernet trainers compile with the
    trainer's kernel options (XLA's convolutions on a CPU), as the population programs do: an
    option XLA refuses, handed over in their place, reaches each one's compile; under
    xla=default none is passed."""
    import dataclasses as dc

    from evonas.train import differentiable, fewshot, oneshot

    module = {"oneshot": oneshot, "fewshot": fewshot, "differentiable": differentiable}[trainer]
    monkeypatch.setattr(module, "library_options",
                        lambda xla: {"xla_cpu_no_such_option": "1"} if xla == "fast" else None)

    def run(config):
        if trainer == "oneshot":
            return train_supernet(jax.random.key(0), MLP, digits, config, 2)
        if trainer == "fewshot":
            params = supernet_init(jax.random.key(1), MLP, digits.x_train)
            return fewshot.train_sub_supernets(jax.random.key(0), MLP, digits, config, params,
                                               0, 2)
        relaxation = differentiable.Relaxation(method="darts", epochs=1)
        return differentiable.differentiable_search(jax.random.key(0), MLP, digits, relaxation,
                                                    config, seeds=1)

    config = dc.replace(CONFIG, steps=2, steps_per_call=1)
    with pytest.raises(Exception, match="xla_cpu_no_such_option"):
        run(config)
    run(dc.replace(config, xla="default"))
