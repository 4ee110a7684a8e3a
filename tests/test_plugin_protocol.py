"""The plug-in protocol as docs/plugins.md states it, used the way a plug-in author does: the
page's own encoding, a table of it, every command; a plug-in's mistake is one line naming the
member and what it returned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _page_encoding() -> str:
    """The encoding of docs/plugins.md's first section, as written there."""
    text = (ROOT / "docs" / "plugins.md").read_text()
    section = text[text.index("## 1. A search-only encoding"):]
    return section[section.index("```python") + len("```python"):section.index("```\n", 10)]


TABLE = '''
import numpy as np
_enc = Mine()
_rng = np.random.default_rng(0)
_n = _enc.space.size
_val = _rng.uniform(0.5, 0.9, _n).astype(np.float32)
_test = (_val + _rng.normal(0, 0.01, _n)).astype(np.float32)
_latency = _rng.uniform(1.0, 5.0, _n).astype(np.float32)


def mine_table():
    return evonas.Table(name="mine", encoding=Mine(), columns={
        "val_acc": _val, "test_acc": _test, "gpu_latency": _latency},
        fitness="val_acc", report=("test_acc",), costs=("gpu_latency",))


evonas.register_benchmark("mine", mine_table)
'''

# An encoding whose cost has no params or flops, and is NaN for some genomes.
OTHER = '''
import jax.numpy as jnp
import numpy as np
import evonas


class Odd:
    name = "odd"

    def __init__(self):
        self.space = evonas.GenomeSpace.from_genes({"a": (0, 1, 2), "b": (0, 1, 2)})

    def describe(self, genome):
        return {"genes": [int(g) for g in np.asarray(genome)]}

    def cost(self, genome):
        a = jnp.asarray(genome)[0].astype(jnp.float32)
        return {"size_mb": jnp.where(a == 2, jnp.nan, a + 1.0)}


evonas.register_encoding("odd", Odd)
_n = Odd().space.size
evonas.register_benchmark("odd", lambda: evonas.Table(
    name="odd", encoding=Odd(), columns={
        "val_acc": np.linspace(0.5, 0.9, _n).astype(np.float32),
        "test_acc": np.linspace(0.5, 0.9, _n).astype(np.float32)},
    fitness="val_acc", report=("test_acc",)))
'''

# The mistake the page used to invite: a cost that reduces over a batch axis.
BATCHED = '''
import jax.numpy as jnp
import evonas


class Batched:
    name = "batched"

    def __init__(self):
        self.space = evonas.GenomeSpace.from_genes({"a": (0, 1), "b": (0, 1)})

    def describe(self, genome):
        return {}

    def cost(self, genomes):
        return {"params": jnp.ones((7,)) * jnp.sum(genomes)}


evonas.register_encoding("batched", Batched)
evonas.register_benchmark("batched", lambda: evonas.Table(
    name="batched", encoding=Batched(), columns={"val_acc": [0.1, 0.2, 0.3, 0.4]},
    fitness="val_acc"))
'''


@pytest.fixture(scope="module")
def plugins(tmp_path_factory):
    where = tmp_path_factory.mktemp("plugins")
    (where / "mine.py").write_text(_page_encoding() + TABLE)
    (where / "odd.py").write_text(OTHER)
    (where / "batched.py").write_text(BATCHED)
    return where


def _evonas(*args, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "evonas.cli", *args], env=env, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=600)


def _mine_costs(plugins) -> tuple[np.ndarray, np.ndarray]:
    """Every genome of the page's space and its params, computed one genome at a time."""
    namespace: dict = {}
    exec(compile(_page_encoding(), "plugins.md", "exec"), namespace)
    enc = namespace["Mine"]()
    genomes = np.stack([np.asarray(enc.space.from_index(i)) for i in range(enc.space.size)])
    params = np.array([float(enc.cost(g)["params"]) for g in genomes])
    return genomes, params


def test_bench_takes_the_pages_cost_per_genome(plugins):
    """A constraint on params keeps exactly the genomes whose own params meet it, and params
    is an objective like any other (it was summed over the batch, and divided by zero)."""
    genomes, params = _mine_costs(plugins)
    bound = float(np.sort(params)[len(params) // 3])
    out = _evonas("bench", "mine", "--plugin", str(plugins / "mine.py"), "--runs", "4",
                  "--budget", "40", "--constraint", f"params <= {bound:g}", "--compact")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    found = np.asarray(result["best_genome"] if "best_genome" in result
                       else result["best"]["genome"])
    index = int(np.flatnonzero((genomes == found).all(axis=1))[0])
    assert params[index] <= bound
    out = _evonas("bench", "mine", "--plugin", str(plugins / "mine.py"), "--runs", "4",
                  "--budget", "40", "--strategy", "nsga2", "--objective", "params",
                  "--compact")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    for member in result["front_of_run_0"]:
        index = int(np.flatnonzero((genomes == np.asarray(member["genome"])).all(axis=1))[0])
        assert member["params"] == pytest.approx(params[index])
    assert all(isinstance(v, float) for v in result["hv_gap"].values())


def test_a_batch_cost_is_one_line_naming_the_member(plugins):
    out = _evonas("bench", "batched", "--plugin", str(plugins / "batched.py"))
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert "Batched.cost(genome)" in lines[0] and "(7,)" in lines[0]
    out = _evonas("describe", "batched", "[0, 1]", "--plugin", str(plugins / "batched.py"))
    assert out.returncode == 2 and "Batched.cost(genome)" in out.stderr


def test_a_run_needs_no_params_or_flops_and_survives_nan_costs(plugins, tmp_path):
    config = tmp_path / "odd.yaml"
    config.write_text(
        f"plugins: [{plugins / 'odd.py'}]\n"
        "encoding: {name: odd}\nevaluator: {name: tabular}\nstrategy: {name: nsga2}\n"
        "search: {population_size: 4, generations: 3, objectives: [{name: val_acc}, "
        "{name: size_mb, direction: min}]}\n"
        "final: {retrain: {top_k: 2}, front: {size: 3}}\n"
        "display: {progress: true, report: true}\n")
    run_dir = tmp_path / "run"
    out = _evonas("run", str(config), "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr
    assert "looked up 3" in out.stdout and "trained" not in out.stdout
    assert "retrained" not in out.stdout and "read from the table" in out.stdout
    assert "None params" not in out.stdout
    rows = [r for r in json.loads(_evonas("front", str(run_dir), "--json", "--plugin",
                                          str(plugins / "odd.py")).stdout)["front"]]
    assert rows and all(r["params"] is None for r in rows)
    out = _evonas("front", str(run_dir), "--plugin", str(plugins / "odd.py"))
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    out = _evonas("front", str(run_dir), "--json", "--plugin", str(plugins / "odd.py"))
    json.loads(out.stdout)  # strict JSON: NaN costs are null
    out = _evonas("describe", "odd", "[2, 0]", "--plugin", str(plugins / "odd.py"))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["cost"]["size_mb"] is None


def test_allowed_objectives_are_listed_once(plugins):
    """A table with a column the encoding's cost also reports (``params``): each name is
    listed once among what an objective may name."""
    import evonas
    from evonas.evaluators import TabularEvaluator
    from evonas.experiment import ExperimentConfig
    from evonas.experiment.components import known_metrics

    namespace: dict = {}
    exec(compile(_page_encoding(), "plugins.md", "exec"), namespace)
    enc = namespace["Mine"]()
    genomes, params = _mine_costs(plugins)
    table = evonas.Table(name="mine", encoding=enc, columns={
        "val_acc": np.linspace(0.1, 0.9, len(params)), "params": params},
        fitness="val_acc", costs=("params",))
    with pytest.raises(ValueError) as err:
        TabularEvaluator(table, objectives=("nope",))
    allowed = str(err.value).rsplit("): ", 1)[1]
    assert allowed.count("'params'") == 1, allowed
    config = ExperimentConfig.from_dict({})
    names = known_metrics(config, enc, table)
    assert len(names) == len(set(names)) and "params" in names


def test_the_report_front_counts_each_architecture_once(tmp_path):
    """A run that revisits architectures (cached rows): the report's fitness-against-params
    front counts each architecture once, as ``evonas front`` does."""
    from evonas.experiment import Experiment
    from evonas.experiment.finish import front_summary
    from evonas.report.history import read_evaluations
    from evonas.report.plots import fitness_vs_cost
    from evonas.store import History
    from tests.experiment_configs import tiny_config

    run_dir = tmp_path / "run"
    config = tiny_config(search={"generations": 5}, final={"retrain": {"top_k": 0}})
    Experiment(config, run_dir=run_dir).run()
    evaluations = read_evaluations(run_dir)
    assert len({e.genome for e in evaluations}) < len(evaluations)  # it revisited some
    with History(run_dir / "history.sqlite", readonly=True) as history:
        table = front_summary(history.rows(), config)["front"]
    figure = fitness_vs_cost(evaluations, "params")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    shown = next(label for label in labels if label.startswith("Pareto front"))
    assert shown == f"Pareto front ({len(table)})"


def test_bench_unique_front_has_no_isomorphic_duplicates():
    out = _evonas("bench", "nb201", "--strategy", "nsga2", "--objective", "edgegpu_latency",
                  "--runs", "2", "--budget", "200", "--count", "unique", "--compact")
    assert out.returncode == 0, out.stderr
    from evonas.genomes import get_encoding

    enc = get_encoding("nb201")
    members = json.loads(out.stdout)["front_of_run_0"]
    canonical = np.asarray(enc.canonical(jax.numpy.asarray([m["genome"] for m in members])))
    assert len({tuple(c) for c in canonical.tolist()}) == len(members)
