"""``search.repair``: a constrained search asks only for architectures inside its bounds on
analytic costs (``evonas.strategies.Feasible``), instead of spending slots on ones it refuses."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from evonas.experiment import Experiment
from evonas.experiment.components import build_components
from evonas.objectives.constraints import parse_constraint
from evonas.operators import mutate_one
from evonas.store import History
from evonas.strategies import Feasible
from tests.experiment_configs import tiny_config


def _rows(run_dir):
    with History(run_dir / "history.sqlite", readonly=True) as history:
        return history.rows()


def _params(encoding, genomes) -> np.ndarray:
    return np.asarray(jax.vmap(encoding.cost)(jnp.asarray(genomes, jnp.int32))["params"])


def _median_bound(encoding) -> int:
    """A params bound that about half of the space's random architectures break."""
    return int(np.median(_params(encoding, encoding.space.sample(jax.random.key(0), 256))))


@struct.dataclass
class _Asked:
    parents: jax.Array


class _Fixed:
    """A strategy that asks for the same genomes, each with parent 7."""

    def __init__(self, space, genomes):
        self.space, self.genomes = space, jnp.asarray(genomes, jnp.int32)
        self.maximize, self.batch_size = True, len(genomes)

    def init(self, key):
        return _Asked(parents=jnp.full((len(self.genomes), 1), -1, jnp.int32))

    def ask(self, key, state):
        return self.genomes, state.replace(parents=jnp.full((len(self.genomes), 1), 7,
                                                            jnp.int32))

    def tell(self, key, genomes, fitness, state):
        return state


def test_repair_replaces_each_infeasible_genome_by_its_first_feasible_candidate():
    encoding = build_components(tiny_config()).encoding
    bound = _median_bound(encoding)
    genomes = encoding.space.sample(jax.random.key(3), 16)
    before = _params(encoding, genomes)
    assert (before > bound).any() and (before <= bound).any()  # the premise: a mix
    fixed = _Fixed(encoding.space, genomes)
    wrapper = Feasible(fixed, encoding, [parse_constraint(f"params <= {bound}")], tries=4)
    key = jax.random.key(11)
    out, state = wrapper.ask(key, wrapper.init(jax.random.key(0)))
    out, genomes = np.asarray(out), np.asarray(genomes)
    after = _params(encoding, out)
    assert (after <= bound).all()
    keep = before <= bound
    np.testing.assert_array_equal(out[keep], genomes[keep])  # feasible ones untouched
    # The candidates, in order: 4 single-gene mutants of each genome, then 4 samples each.
    k_mutate, k_sample = jax.random.split(jax.random.fold_in(key, 2))
    candidates = np.concatenate(
        [np.asarray(mutate_one(jax.random.fold_in(k_mutate, j), jnp.asarray(genomes),
                               encoding.space)) for j in range(4)]
        + [np.asarray(encoding.space.sample(k_sample, 64))]).reshape(8, 16, -1)
    feasible = _params(encoding, candidates.reshape(128, -1)).reshape(8, 16) <= bound
    for i in np.flatnonzero(~keep):
        first = int(np.argmax(feasible[:, i]))
        np.testing.assert_array_equal(out[i], candidates[first, i])
        # a mutant keeps the strategy's parent; a fresh sample has none
        assert int(state.parents[i, 0]) == (7 if first < 4 else -1)
    assert (state.parents[keep] == 7).all()
    # deterministic by key
    again, _ = wrapper.ask(key, wrapper.init(jax.random.key(0)))
    np.testing.assert_array_equal(np.asarray(again), out)


def test_repair_keeps_a_genome_without_a_feasible_candidate():
    encoding = build_components(tiny_config()).encoding
    genomes = encoding.space.sample(jax.random.key(3), 4)
    wrapper = Feasible(_Fixed(encoding.space, genomes), encoding,
                       [parse_constraint("params <= 1")], tries=2)
    np.testing.assert_array_equal(np.asarray(wrapper.repair(jax.random.key(1), genomes)),
                                  np.asarray(genomes))


def test_a_repaired_run_trains_only_feasible_architectures(tmp_path):
    bound = _median_bound(build_components(tiny_config()).encoding)
    search = {"generations": 2, "constraints": [f"params <= {bound}"]}
    final = {"retrain": {"top_k": 1}}
    Experiment(tiny_config(search=search, final=final), run_dir=tmp_path / "plain").run()
    plain = _rows(tmp_path / "plain")
    refused = [r for r in plain if r["failed"]]
    assert refused and all(r["reason"].startswith("constraint params <=") for r in refused)

    repaired = tiny_config(search={**search, "repair": {"tries": 8}}, final=final)
    result = Experiment(repaired, run_dir=tmp_path / "r").run()
    rows = _rows(tmp_path / "r")
    assert len(rows) == len(plain) == 8 and result.final is not None
    assert not any(r["failed"] for r in rows)
    assert all(r["params"] <= bound for r in rows)
    # the same seed gives the same search
    Experiment(repaired, run_dir=tmp_path / "again").run()
    assert [(r["genome"], r["fitness"], r["parents"]) for r in _rows(tmp_path / "again")] == [
        (r["genome"], r["fitness"], r["parents"]) for r in rows]


@pytest.mark.parametrize("search, message", [
    ({"repair": {"tries": 0}}, r"search.repair.tries must be an integer >= 1; got 0"),
    ({"repair": {"tries": 4, "tris": 2}}, r"search.repair.*tris"),
])
def test_bad_repair_settings_are_one_line(search, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(search=search)


def test_repair_without_a_bound_on_an_analytic_cost_is_refused_before_anything_runs(tmp_path):
    config = tiny_config(search={"repair": {}, "constraints": ["val_acc >= 0.5"]})
    with pytest.raises(ValueError, match=r"^search.repair needs a bound on an analytic cost "
                                         r"\(.*params.*\) in search.constraints; got "
                                         r"\['val_acc >= 0.5'\]: add one, such as "
                                         r"'params <= \.\.\.'"):
        Experiment(config, run_dir=tmp_path / "r").run()
    assert not (tmp_path / "r").exists()
