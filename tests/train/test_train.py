"""Tests of the population trainer (``evonas.train``): plans agree, divergence is isolated,
chunking and compile caching work. Tiny shapes: an MLP of widths 8/16 on 256 MNIST-1D examples."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.data import load_dataset
from evonas.genomes.mlp import MLPEncoding
from evonas.train import CostModel, ProgramCache, TrainConfig, train_population
from evonas.train.memory import individual_bytes, max_bounds_activations

# Four genomes, three shape signatures: (num_layers, width_0, act_0, width_1, act_1).
GENOMES = np.array([[0, 0, 0, 1, 0], [1, 1, 1, 0, 1], [0, 0, 1, 1, 1], [1, 0, 0, 1, 1]], np.int32)
CONFIG = TrainConfig(steps=12, batch_size=32, learning_rate=2e-2, eval_batch_size=512,
                     schedule="cosine")


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("mnist1d", limit=256)


@pytest.fixture(scope="module")
def encoding():
    return MLPEncoding(input_shape=(40, 1), widths=(8, 16), max_layers=2,
                       activations=("relu", "tanh"))


@pytest.fixture(scope="module")
def masked(encoding, dataset):
    return train_population(jax.random.key(0), encoding, GENOMES, dataset,
                            TrainConfig(**{**CONFIG.__dict__, "plan": "masked"}))


def _with(**changes) -> TrainConfig:
    return TrainConfig(**{**CONFIG.__dict__, **changes})


def test_masked_and_grouped_give_the_same_numbers(encoding, dataset, masked):
    grouped = train_population(jax.random.key(0), encoding, GENOMES, dataset,
                               _with(plan="grouped"))
    assert masked.plan == "masked" and len(masked.groups) == 1
    assert grouped.plan == "grouped" and len(grouped.groups) == 3
    assert sorted(len(g.members) for g in grouped.groups) == [1, 1, 2]
    for name in ("val_loss", "val_acc", "val_f1", "train_loss"):
        np.testing.assert_allclose(grouped.metrics[name], masked.metrics[name], rtol=2e-4,
                                   atol=1e-5, err_msg=name)
    # Training did something: every model beats the untrained loss ln(10) and chance accuracy.
    assert np.all(masked.metrics["val_loss"] < math.log(10))
    assert np.all(masked.metrics["val_acc"] > 0.15)
    assert not masked.failed.any() and masked.reasons == [None] * 4


def test_a_diverging_individual_fails_alone(encoding, dataset, masked):
    cache = ProgramCache()
    init = cache.init

    def poisoned(*args, **kwargs):  # genome-independent NaN: individual 1 starts from NaN params
        params = init(*args, **kwargs)
        return jax.tree.map(lambda p: p.at[1].set(jnp.nan), params)

    cache.init = poisoned
    result = train_population(jax.random.key(0), encoding, GENOMES, dataset,
                              _with(plan="masked"), cache=cache)
    assert result.failed.tolist() == [False, True, False, False]
    assert result.reasons[1] == "loss became nan at step 0"
    assert np.isnan(result.metrics["val_acc"][1])
    ok = [0, 2, 3]
    for name in ("val_loss", "val_acc", "train_loss"):
        np.testing.assert_allclose(result.metrics[name][ok], masked.metrics[name][ok],
                                   rtol=1e-6, err_msg=name)


def test_auto_trains_standalone_modules_with_the_same_numbers(encoding, dataset, masked):
    # With free compiles (the CPU's vmap and supernet penalties otherwise), every group trains
    # one standalone module (members 0 and 2 share bounds, not activations: split), one
    # individual per call.
    free = CostModel(compile_seconds=0.0)
    result = train_population(jax.random.key(0), encoding, GENOMES, dataset, _with(plan="auto"),
                              cost_model=free)
    assert result.plan == "grouped" and all(g.exact and g.size == 1 for g in result.groups)
    assert sorted(m for g in result.groups for m in g.members) == [0, 1, 2, 3]
    for name in ("val_loss", "val_acc", "val_f1", "train_loss"):
        np.testing.assert_allclose(result.metrics[name], masked.metrics[name], rtol=2e-4,
                                   atol=1e-5, err_msg=name)
    supernet = train_population(jax.random.key(0), encoding, GENOMES, dataset,
                                _with(plan="auto", exact_modules=False), cost_model=free)
    assert not any(g.exact for g in supernet.groups)
    np.testing.assert_allclose(supernet.metrics["val_loss"], masked.metrics["val_loss"],
                               rtol=2e-4)


def test_a_diverging_standalone_module_fails_alone(encoding, dataset, masked):
    cache = ProgramCache()
    init = cache.init

    def poisoned(*args, **kwargs):
        params = init(*args, **kwargs)
        return jax.tree.map(lambda p: p.at[2].set(jnp.inf), params)

    cache.init = poisoned
    result = train_population(jax.random.key(0), encoding, GENOMES, dataset, _with(plan="auto"),
                              cache=cache, cost_model=CostModel(compile_seconds=0.0))
    assert all(g.exact for g in result.groups)
    assert result.failed.tolist() == [False, False, True, False]
    assert result.reasons[2] == "loss became nan at step 0"
    ok = [0, 1, 3]
    for name in ("val_loss", "val_acc", "train_loss"):
        np.testing.assert_allclose(result.metrics[name][ok], masked.metrics[name][ok],
                                   rtol=2e-4, atol=1e-5, err_msg=name)


def test_chunks_fit_the_memory_budget(encoding, dataset, masked):
    options = CONFIG.program_options()
    bounds = encoding.max_bounds()
    cost = {k: float(v) for k, v in encoding.cost(GENOMES[0], bounds).items()}
    act = max_bounds_activations(encoding, (40, 1), CONFIG.batch_size)
    need = individual_bytes(cost["executed_params"], cost["executed_flops"],
                            cost["executed_flops"], act, options)
    budget = 2.5 * need / 2**20  # room for two individuals: two chunks of two
    batched = CostModel(vmap_penalty=0.0)  # the whole population in one call, but for memory
    chunked = train_population(jax.random.key(0), encoding, GENOMES, dataset,
                               _with(plan="masked", memory_budget_mb=budget), cost_model=batched)
    assert chunked.program_compiles.get("train_chunk") == 1  # one new program of size 2
    np.testing.assert_allclose(chunked.metrics["val_loss"], masked.metrics["val_loss"],
                               rtol=2e-4)
    with pytest.raises(ValueError, match=r"memory_budget_mb=0.001 is too small .* at least"):
        train_population(jax.random.key(0), encoding, GENOMES, dataset,
                         _with(plan="masked", memory_budget_mb=0.001))


def test_masked_program_compiles_once_over_three_generations(encoding, dataset):
    from evonas.evaluators import TrainingEvaluator

    # Options no other test compiled; no bound on the cache, which other tests in this worker
    # may have filled (the bound itself is tested in test_the_program_cache_is_bounded).
    config = _with(plan="masked", learning_rate=0.0123, max_programs=10**9)
    evaluator = TrainingEvaluator(encoding, dataset, config)
    keys = jax.random.split(jax.random.key(7), 3)
    compiled = []
    for gen, key in enumerate(keys):
        genomes = encoding.space.sample(jax.random.fold_in(key, 1), 4)
        results = evaluator.evaluate(key, genomes)
        assert results.fitness.shape == (4,) and bool(jnp.all(results.fitness > 0.1))
        compiled.append(results.report.program_compiles.get("train_chunk", 0))
        if gen > 0:
            assert results.report.compiles == 0
    assert compiled == [1, 0, 0]
    # The training evaluator computes no costs: the cost wrapper does, once (a run's chain).
    assert results.costs == {}


def test_bad_inputs_fail_with_messages(encoding, dataset):
    with pytest.raises(ValueError, match=r"genomes must be an int array \[P, 5\]"):
        train_population(jax.random.key(0), encoding, GENOMES[:, :3], dataset, CONFIG)
    bad = GENOMES.copy()
    bad[2, 1] = 5
    with pytest.raises(ValueError, match=r"genome 2 = \[0, 5, 1, 1, 1\] lies outside"):
        train_population(jax.random.key(0), encoding, bad, dataset, CONFIG)
    with pytest.raises(ValueError, match=r"batch_size=4096 exceeds the 256 training examples"):
        train_population(jax.random.key(0), encoding, GENOMES, dataset, _with(batch_size=4096))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, r"TrainConfig.steps must be an integer >= 1; got 0"),
        ("optimizer", "adamw", r"TrainConfig.optimizer must be one of \['adam', 'sgd'\]"),
        ("plan", "fast", r"TrainConfig.plan must be one of \['auto', 'masked', 'grouped'\]"),
        ("learning_rate", -1.0, r"TrainConfig.learning_rate must be a number in \(0, inf\)"),
        ("momentum", 1.5, r"TrainConfig.momentum must be a number in \[0, 1\)"),
        ("memory_budget_mb", 0,
         r"TrainConfig.memory_budget_mb must be a number in \(0, inf\); got 0"),
        ("schedule", "step", r"TrainConfig.schedule must be one of \['constant', 'cosine'\]"),
        ("xla", "O3", r"TrainConfig.xla must be one of \['default', 'fast'\]"),
        ("exact_modules", 1, r"TrainConfig.exact_modules must be True or False"),
    ],
)
def test_config_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


def test_the_program_cache_is_bounded():
    data = load_dataset("digits", limit=200)
    enc = MLPEncoding(input_shape=data.input_shape, num_classes=data.num_classes, max_layers=2,
                      widths=(4, 8))
    config = TrainConfig(steps=2, batch_size=16, plan="grouped", max_programs=2)
    cache = ProgramCache()
    genomes = np.asarray(enc.space.sample(jax.random.key(0), 4))
    first = train_population(jax.random.key(0), enc, genomes, data, config, cache=cache)
    assert cache.size() > 2  # this call compiled more than the bound ...
    again = train_population(jax.random.key(0), enc, genomes, data, config, cache=cache)
    # ... so the next call started over: it compiled again (or, where an earlier test in this
    # process turned JAX's persistent cache on, loaded its programs from disk again),
    assert again.compiles + again.disk_cache_hits > 0
    for name in first.metrics:  # to the same programs and numbers
        np.testing.assert_array_equal(again.metrics[name], first.metrics[name])


LIBRARY = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def test_xla_options_the_user_sets_in_xla_flags_win(monkeypatch):
    from evonas.train.config import compiler_options, library_options

    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert compiler_options("train_chunk", "fast") == {
        "xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False, **LIBRARY}
    assert compiler_options("train_chunk", "default") is None
    assert library_options("fast") == LIBRARY and library_options("default") is None
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0 --foo=1 "
                       "--xla_cpu_experimental_ynn_fusion_type=dot")
    assert compiler_options("train_chunk", "fast") == {"xla_cpu_use_fusion_emitters": False}
    assert compiler_options("init_population", "fast") == {
        "xla_llvm_disable_expensive_passes": True, "xla_cpu_use_fusion_emitters": False}
    assert library_options("fast") is None


def test_convolutions_compile_to_xla_kernels_and_a_jaxlib_without_the_option_is_left_alone(
        monkeypatch):
    """Under ``fast`` a 2-D convolution's weight gradient runs in XLA's own kernel, not handed
    to the YNNPACK library as this jaxlib does by default (5-7x slower there on a CPU); a
    jaxlib that refuses the option compiles without it instead of failing every program."""
    from evonas.train import config

    def gradient(x, w):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(y ** 2)

    # 32 channels: this jaxlib keeps smaller convolutions (8 or 16 channels) in its own kernels
    args = (jnp.ones((2, 28, 28, 32)), jnp.ones((3, 3, 32, 32)))

    def hlo(options):
        fun = jax.jit(jax.grad(gradient, 1), compiler_options=options)
        return fun.lower(*args).compile().as_text()

    assert "ynn_fusion" in hlo(None)  # the premise: this jaxlib hands convolutions over
    fast = hlo(config.compiler_options("train_chunk", "fast"))
    assert "ynn_fusion" not in fast and "convolution(" in fast
    standalone = hlo(config.library_options("fast"))
    assert "ynn_fusion" not in standalone and "convolution(" in standalone

    # The standalone trainer (retraining, distillation, fine-tuning) compiles its step with them:
    # an option XLA refuses, handed over in their place, reaches the compile.
    from evonas.genomes import get_encoding
    from evonas.train import standalone, train_module

    enc = get_encoding("conv", input_shape=(8, 8, 1), num_classes=10, max_layers=1,
                       widths=(4,), ops=("conv3",), reductions=())
    module, _ = enc.build(np.zeros(enc.space.num_genes, np.int32))
    data = load_dataset("digits", limit=64)
    monkeypatch.setattr(standalone, "library_options",
                        lambda xla: {"xla_cpu_no_such_option": "1"} if xla == "fast" else None)
    with pytest.raises(Exception, match="xla_cpu_no_such_option"):
        train_module(jax.random.key(0), module, data.x_train, data.y_train,
                     TrainConfig(steps=1, batch_size=16), 1)
    train_module(jax.random.key(0), module, data.x_train, data.y_train,  # "default": none
                 TrainConfig(steps=1, batch_size=16, xla="default"), 1)
    monkeypatch.undo()

    monkeypatch.setattr(config, "_LIBRARY_OPTIONS", {"xla_cpu_no_such_option": "1"})
    config._library_options_taken.cache_clear()
    try:
        assert config.library_options("fast") is None
        assert "xla_cpu_no_such_option" not in config.compiler_options("train_chunk", "fast")
    finally:
        config._library_options_taken.cache_clear()


def test_the_image_pipeline_is_deterministic_per_member_and_plan_independent():
    """Augmentation inside the step: the same seed gives the same numbers, whatever the plan
    (members keep their own draws when grouped differently), and it changes what is learnt;
    the standalone trainer (retraining) runs the same pipeline."""
    from evonas.genomes import get_encoding
    from evonas.train import train_module
    from evonas.train.augment import Augment

    data = load_dataset("digits", limit=256)
    enc = get_encoding("conv", input_shape=(8, 8, 1), num_classes=10, max_layers=2,
                       widths=(4, 8), ops=("conv3", "maxpool3"), reductions=(0,))
    genomes = np.asarray(enc.space.sample(jax.random.key(2), 3))
    config = TrainConfig(steps=8, batch_size=32, eval_batch_size=512,
                         augment=Augment(crop=1, flip=False, cutout=2))
    runs = [train_population(jax.random.key(0), enc, genomes, data,
                             TrainConfig(**{**config.__dict__, "plan": plan}))
            for plan in ("masked", "grouped", "masked")]
    np.testing.assert_array_equal(runs[0].metrics["val_loss"], runs[2].metrics["val_loss"])
    np.testing.assert_allclose(runs[0].metrics["val_loss"], runs[1].metrics["val_loss"],
                               rtol=2e-4, atol=1e-5)
    plain = train_population(jax.random.key(0), enc, genomes, data,
                             TrainConfig(**{**config.__dict__, "augment": None}))
    assert not np.allclose(plain.metrics["val_loss"], runs[0].metrics["val_loss"])
    module, _ = enc.build(genomes[0])
    x, y = data.x_train, data.y_train
    a = train_module(jax.random.key(1), module, x, y, config, 5)
    b = train_module(jax.random.key(1), module, x, y, config, 5)
    c = train_module(jax.random.key(1), module, x, y,
                     TrainConfig(**{**config.__dict__, "augment": None}), 5)
    leaves = lambda v: jax.tree.leaves(v)  # noqa: E731
    assert all(np.array_equal(p, q) for p, q in zip(leaves(a), leaves(b)))
    assert not all(np.array_equal(p, q) for p, q in zip(leaves(a), leaves(c)))


def test_weight_decay_and_bfloat16_compute_train():
    data = load_dataset("digits", limit=128)
    enc = MLPEncoding(input_shape=(8, 8, 1), widths=(16,), max_layers=1,
                      activations=("relu",))
    genomes = np.zeros((2, enc.space.num_genes), np.int32)
    base = TrainConfig(steps=20, batch_size=32, eval_batch_size=512)
    plain = train_population(jax.random.key(0), enc, genomes, data, base)
    decayed = train_population(jax.random.key(0), enc, genomes, data,
                               TrainConfig(**{**base.__dict__, "weight_decay": 0.1}))
    low = train_population(jax.random.key(0), enc, genomes, data,
                           TrainConfig(**{**base.__dict__, "precision": "bfloat16"}))
    assert not np.allclose(plain.metrics["val_loss"], decayed.metrics["val_loss"])
    assert np.all(low.metrics["val_acc"] > 0.3) and not low.failed.any()
    np.testing.assert_allclose(low.metrics["val_acc"], plain.metrics["val_acc"], atol=0.15)


def test_label_smoothing_is_the_smoothed_targets_cross_entropy_in_both_trainers():
    from evonas.train import cross_entropy, train_module

    logits = jax.random.normal(jax.random.key(3), (6, 5))
    labels = jnp.array([0, 4, 2, 2, 1, 3])
    log_p = jax.nn.log_softmax(logits)
    by_hand = -jnp.mean(0.8 * log_p[jnp.arange(6), labels] + 0.2 / 5 * log_p.sum(-1))
    np.testing.assert_allclose(cross_entropy(logits, labels, 0.2), by_hand, rtol=1e-6)
    np.testing.assert_allclose(cross_entropy(logits, labels, 0.0),
                               -jnp.mean(log_p[jnp.arange(6), labels]), rtol=1e-6)

    data = load_dataset("digits", limit=128)
    enc = MLPEncoding(input_shape=(8, 8, 1), widths=(16,), max_layers=1,
                      activations=("relu",))
    genomes = np.zeros((2, enc.space.num_genes), np.int32)
    base = TrainConfig(steps=20, batch_size=32, eval_batch_size=512)
    smooth = TrainConfig(**{**base.__dict__, "label_smoothing": 0.1})
    plain = train_population(jax.random.key(0), enc, genomes, data, base)
    smoothed = train_population(jax.random.key(0), enc, genomes, data, smooth)
    assert not np.allclose(plain.metrics["val_loss"], smoothed.metrics["val_loss"])
    assert np.all(smoothed.metrics["val_acc"] > 0.3)
    module, _ = enc.build(genomes[0])
    a = train_module(jax.random.key(1), module, data.x_train, data.y_train, base, 5)
    b = train_module(jax.random.key(1), module, data.x_train, data.y_train, smooth, 5)
    assert not all(np.array_equal(p, q) for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    with pytest.raises(ValueError, match="TrainConfig.label_smoothing"):
        TrainConfig(label_smoothing=1.0)


def test_evaluation_holds_one_batch_of_activations_at_a_time(monkeypatch):
    """The population's evaluation scans its batches: the compiled program's scratch memory
    follows ``eval_batch_size``, not the validation split (unrolled batches let XLA keep every
    batch's activations live: 27.5 GB for a 28x28 CNN on 6,000 images)."""
    from evonas.data import Dataset
    from evonas.genomes import get_encoding
    from evonas.train import cache as cache_module
    from evonas.train import train_population

    temp: dict[int, int] = {}
    jit = cache_module.ProgramCache._jit

    def measured(self, program, xla):
        fun = jit(self, program, xla)
        if program != "evaluate_group":
            return fun

        def call(*args):
            spec = args[0]
            compiled = fun.lower(*args).compile()
            temp[spec.options.eval_batch_size] = compiled.memory_analysis().temp_size_in_bytes
            return fun(*args)

        return call

    monkeypatch.setattr(cache_module.ProgramCache, "_jit", measured)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 32)).astype(np.float32)
    dataset = Dataset.from_arrays(x, np.arange(5000) % 3, x[:100], np.arange(100) % 3,
                                  val_fraction=0.8)
    encoding = get_encoding("mlp", input_shape=(32,), num_classes=3, max_layers=2,
                            widths=[512])
    genomes = np.asarray(encoding.space.sample(jax.random.key(0), 2))
    metrics = {}
    for size in (4000, 300):  # 300 does not divide the split: the last batch is padded
        config = TrainConfig(steps=2, batch_size=16, eval_batch_size=size, plan="masked")
        metrics[size] = train_population(jax.random.key(0), encoding, genomes, dataset,
                                         config).metrics
    assert len(dataset.y_val) % 300 and temp[300] < 0.2 * temp[4000], temp
    for name in ("val_acc", "val_loss"):  # padding counts for nothing
        np.testing.assert_allclose(metrics[300][name], metrics[4000][name], rtol=1e-5)
