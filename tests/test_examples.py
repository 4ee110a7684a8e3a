"""The encoding in examples/ registers, describes itself and is searched by every strategy."""

import functools
import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import evonas

ROOT = pathlib.Path(__file__).resolve().parents[1]
# One small program per strategy: XLA's optimiser would dominate and buys nothing at this size.
fast_jit = functools.partial(
    jax.jit,
    compiler_options={"xla_backend_optimization_level": 0,
                      "xla_llvm_disable_expensive_passes": True},
)


def load_example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = load_example("custom_encoding")
ENCODING = evonas.get_encoding("mobile")
TARGET_PARAMS = 30_000.0


def fitness(genomes):
    """Closeness of the parameter count to a target (0 is perfect; maximised)."""
    params = jax.vmap(ENCODING.cost)(genomes)["params"].astype(jnp.float32)
    return -jnp.abs(jnp.log(params / TARGET_PARAMS))


def test_example_is_short_and_registered():
    assert len((ROOT / "examples" / "custom_encoding.py").read_text().splitlines()) <= 60
    assert "mobile" in evonas.list_encodings()
    assert isinstance(ENCODING, evonas.Encoding)


def test_example_cost_is_exact():
    # Block 0: 16 -> 16x6 hidden -> 64, kernel 7; the rest expand 1, kernel 3, width 16.
    genome = ENCODING.space.from_dict(
        {"expand_0": 6, "kernel_0": 7, "width_0": 64}
        | {f"{k}_{i}": v for i in range(1, 4) for k, v in
           {"expand": 1, "kernel": 3, "width": 16}.items()}
    )
    hidden = 16 * 6
    block0 = 16 * hidden + hidden * 49 + hidden * 64
    block1 = 64 * 64 + 64 * 9 + 64 * 16
    rest = 2 * (16 * 16 + 16 * 9 + 16 * 16)
    params = block0 + block1 + rest + 16 * 10
    assert int(ENCODING.cost(genome)["params"]) == params
    assert ENCODING.describe(genome)["params"] == params
    assert int(ENCODING.cost(genome)["flops"]) == (params - 160) * 16 * 16 + 160


def log_params(genomes):
    """The second objective of multi-objective strategies, and MAP-Elites' descriptor."""
    return jnp.log(jax.vmap(ENCODING.cost)(genomes)["params"].astype(jnp.float32))


def objectives(genomes):
    """Closeness to the target (maximised) against the log parameter count (minimised)."""
    return jnp.stack([fitness(genomes), log_params(genomes)], axis=-1)


def small(name):
    """Every strategy with a small population, so each search is a few milliseconds."""
    if name == "nsga2":
        return {"population_size": 8, "maximize": (True, False)}
    if name == "weighted_sum":
        return {"weights": (1.0, 0.1), "maximize": (True, False),
                "strategy_params": {"population_size": 8, "sample_size": 3, "batch_size": 4}}
    if name == "map_elites":
        return {"batch_size": 8, "descriptors": lambda g: log_params(g)[:, None],
                "bins": ((9.0, 10.0, 11.0, 12.0),)}
    if name == "random_search":
        return {"batch_size": 8}
    if name == "regularized_evolution":
        return {"population_size": 8, "sample_size": 3, "batch_size": 4}
    if name == "genetic_algorithm":
        return {"population_size": 8}
    if name == "bayesian_optimization":
        return {"batch_size": 4, "history_size": 16, "num_init": 4, "train_steps": 2,
                "num_candidates": 8}
    if name == "grid_search":  # 4.1 million genomes: over the default limit, so raised
        return {"batch_size": 4, "max_size": 5_000_000}
    if name in ("reinforce", "q_learning", "asng", "pbil", "local_search", "darts", "gdas",
                "drnas", "hybrid"):
        return {"batch_size": 4}
    return {"population_size": 8}


@pytest.mark.parametrize("name", evonas.list_strategies())
def test_every_strategy_searches_the_example(name):
    try:
        strategy = evonas.get_strategy(name, ENCODING.space, **small(name))
    except ValueError as err:  # an evosax algorithm whose minimum population is larger
        if "population" not in str(err):
            raise
        strategy = evonas.get_strategy(name, ENCODING.space, population_size=16)

    if hasattr(strategy, "bind"):
        # DARTS, GDAS, DrNAS (and a hybrid starting with one) train the encoding's supernet on
        # data: the experiment binds them, and a search-only space inside jit can't. They say
        # so in one line (tests/experiment/test_differentiable_run.py runs them for real).
        with pytest.raises(ValueError, match="is not bound to an encoding and data") as caught:
            strategy.init(jax.random.key(0))
        assert "\n" not in str(caught.value)
        return

    # A multi-objective strategy is told [B, 2]: closeness to the target and log parameters.
    multi = evonas.strategies.num_objectives(strategy) > 1
    told = objectives if multi else fitness

    def run(key):
        def generation(state, key):
            genomes, state = strategy.ask(key, state)
            return strategy.tell(jax.random.key(0), genomes, told(genomes), state), genomes

        return jax.lax.scan(generation, strategy.init(key), jax.random.split(key, 6))

    state, genomes = fast_jit(run)(jax.random.key(0))
    assert genomes.shape == (6, strategy.batch_size, ENCODING.space.num_genes)
    assert bool(ENCODING.space.contains(genomes).all())
    if multi:
        # The front of everything told grows past the first generation's.
        every = np.asarray(jax.vmap(objectives)(genomes))
        reference = (every[..., 0].min() - 1.0, every[..., 1].max() + 1.0)
        first = evonas.hypervolume(every[0], reference, strategy.maximize)
        assert evonas.hypervolume(every.reshape(-1, 2), reference, strategy.maximize) > first
        return
    every = np.asarray(jax.vmap(fitness)(genomes))
    # The strategy's best is the best it was told, and it is that genome's own fitness.
    np.testing.assert_allclose(float(state.best_fitness), every.max(), atol=1e-5)
    np.testing.assert_allclose(float(fitness(state.best_genome[None])[0]), every.max(), atol=1e-5)


@pytest.mark.parametrize("name", ["regularized_evolution", "genetic_algorithm", "evosax_CMA_ES"])
def test_evolution_beats_random_search_on_the_example(name):
    budget = 240

    def best_after(strategy, key):
        def generation(state, key):
            genomes, state = strategy.ask(key, state)
            return strategy.tell(jax.random.key(0), genomes, fitness(genomes), state), None

        state, _ = jax.lax.scan(generation, strategy.init(key),
                                jax.random.split(key, budget // strategy.batch_size))
        return state.best_fitness

    keys = jax.random.split(jax.random.key(1), 16)
    settings = {"regularized_evolution": {"population_size": 24, "sample_size": 6,
                                          "batch_size": 8},
                "genetic_algorithm": {"population_size": 24},
                "evosax_CMA_ES": {"population_size": 24}}[name]
    evolved = fast_jit(jax.vmap(functools.partial(
        best_after, evonas.get_strategy(name, ENCODING.space, **settings))))(keys)
    random = fast_jit(jax.vmap(functools.partial(
        best_after, evonas.RandomSearch(ENCODING.space, batch_size=24))))(keys)
    # Mean distance to the target in log-parameters: evolution gets closer.
    assert float(-evolved.mean()) < float(-random.mean())


def _readme_blocks(heading):
    """The python code blocks of the README's section ``heading``."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 4)]
    return [block.split("```", 1)[0] for block in section.split("```python")[1:]]


@pytest.mark.slow
def test_the_readme_ten_line_script_runs_and_its_model_takes_raw_inputs(capsys, tmp_path,
                                                                         monkeypatch):
    """The README's script, as written: a search, the exported model loaded, and raw inputs
    (not standardised) given to it score what the run reported."""
    code = _readme_blocks("## A search in ten lines")[0]
    assert len([line for line in code.splitlines() if line.strip()]) <= 11
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    module, variables, info = namespace["module"], namespace["variables"], namespace["info"]
    raw = evonas.load_dataset("digits", normalize=False)
    assert raw.x_test.min() >= 0.0 and raw.x_test.max() <= 1.0  # pixels, not standardised
    logits = np.asarray(module.apply(variables, raw.x_test))
    accuracy = float(np.mean(logits.argmax(-1) == raw.y_test))
    assert info["test_acc"] > 0.5
    assert abs(accuracy - info["test_acc"]) <= 1.0 / len(raw.y_test)  # float32 vs float64
    assert info["preprocessing"]["standardize"]["mean"] != [0.0]


def test_the_readme_benchmark_search_runs(capsys):
    code = _readme_blocks("## A search in ten lines")[1]
    assert len([line for line in code.splitlines() if line.strip()]) <= 11
    exec(compile(code, "README.md", "exec"), {})
    mean = float(capsys.readouterr().out.strip())
    assert 72.0 < mean <= 73.52  # CIFAR-100's optimum is 73.51
