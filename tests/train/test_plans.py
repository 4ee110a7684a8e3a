"""Tests of the execution plans' cost model and of the population metrics (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from evonas.train.metrics import confusion_metrics
from evonas.train.plans import CostModel, Group, PlanCosts, make_plan


class _WidthEncoding:
    """A stand-in encoding whose bounds are one width: join is max, max_bounds is 64."""

    def bounds(self, genome):
        return int(genome[0])

    def join(self, a, b):
        return max(a, b)

    def max_bounds(self):
        return 64


GENOMES = np.array([[8], [16], [8], [32], [16], [8]])


def _costs(model: CostModel, compiled=()) -> PlanCosts:
    return PlanCosts(macs_of=lambda b: 1e4 * b * b, is_compiled=lambda b, n: (b, n) in compiled,
                     steps=100, batch_size=128, model=model)


def test_grouped_plan_is_one_group_per_bounds():
    name, groups, _ = make_plan("grouped", _WidthEncoding(), GENOMES, 1, _costs(CostModel()))
    assert name == "grouped"
    assert [(g.bounds, g.members, g.size) for g in groups] == [
        (8, (0, 2, 5), 3), (16, (1, 4), 2), (32, (3,), 1)]
    _, padded, _ = make_plan("grouped", _WidthEncoding(), GENOMES, 4, _costs(CostModel()))
    assert [g.size for g in padded] == [4, 4, 4]  # multiples of the device count


def test_auto_merges_when_compiles_are_expensive():
    model = CostModel(compile_seconds=100.0, vmap_penalty=0.0)
    costs = _costs(model)
    name, groups, estimate = make_plan("auto", _WidthEncoding(), GENOMES, 1, costs)
    # One program at join(8, 16, 32) = 32 beats three compiles and beats masked at width 64.
    assert name == "merged"
    assert [(g.bounds, sorted(g.members)) for g in groups] == [(32, [0, 1, 2, 3, 4, 5])]
    assert estimate == pytest.approx(costs.total([Group(32, tuple(range(6)), 6)]))
    assert estimate < costs.total([Group(64, tuple(range(6)), 6)])


def test_auto_keeps_exact_groups_when_compiles_are_cheap():
    model = CostModel(compile_seconds=0.0, vmap_penalty=0.5)
    name, groups, _ = make_plan("auto", _WidthEncoding(), GENOMES, 1, _costs(model))
    assert name == "grouped" and sorted(g.bounds for g in groups) == [8, 16, 32]


def test_auto_pads_a_group_to_reuse_a_compiled_program():
    model = CostModel(compile_seconds=5.0, vmap_penalty=0.0)
    compiled = {(8, 4), (16, 2), (32, 1)}  # the exact group of width 8 has 3 members
    name, groups, _ = make_plan("auto", _WidthEncoding(), GENOMES, 1, _costs(model, compiled))
    assert name == "grouped"
    assert {g.bounds: g.size for g in groups} == {8: 4, 16: 2, 32: 1}


def test_masked_plan_is_one_group_at_max_bounds():
    batched = CostModel(vmap_penalty=0.0)  # an accelerator: the whole population in one call
    name, groups, _ = make_plan("masked", _WidthEncoding(), GENOMES, 4, _costs(batched))
    assert name == "masked" and [(g.bounds, g.size, g.exact) for g in groups] == [(64, 8, False)]
    # On the CPU a vmapped individual costs more than one alone: the same single program of one
    # individual per device runs twice.
    name, groups, _ = make_plan("masked", _WidthEncoding(), GENOMES, 4, _costs(CostModel()))
    assert [(g.bounds, g.size, g.runs) for g in groups] == [(64, 4, 2)]


def test_auto_on_cpu_runs_members_one_at_a_time_and_splits_by_module():
    # Members 0 and 2 share bounds and module; member 5 has their bounds but another module.
    modules = {0: "a", 2: "a", 5: "b", 1: "c", 4: "c", 3: "d"}
    costs = _costs(CostModel())
    costs.module_of = modules.__getitem__
    name, groups, estimate = make_plan("auto", _WidthEncoding(), GENOMES, 1, costs)
    assert name == "grouped"
    got = sorted((g.bounds, g.members, g.size, g.exact) for g in groups)
    assert got == [(8, (0, 2), 1, True), (8, (5,), 1, True), (16, (1, 4), 1, True),
                   (32, (3,), 1, True)]
    assert estimate == pytest.approx(costs.total(groups))
    # The literal grouped plan keeps one vmapped group per bounds; a mixed one trains the supernet.
    _, grouped, _ = make_plan("grouped", _WidthEncoding(), GENOMES, 1, costs)
    assert [(g.bounds, g.size, g.exact) for g in grouped] == [(8, 3, False), (16, 2, True),
                                                             (32, 1, True)]


def test_confusion_metrics_match_scikit_learn():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, (3, 50))
    y_pred = np.where(rng.random((3, 50)) < 0.6, y_true, rng.integers(0, 3, (3, 50)))
    confusion = np.zeros((3, 4, 4))
    for p in range(3):
        np.add.at(confusion[p], (y_true[p], y_pred[p]), 1)
    got = confusion_metrics(confusion, np.full(3, 25.0))
    for p in range(3):
        assert got["acc"][p] == pytest.approx(np.mean(y_true[p] == y_pred[p]))
        for name, fn in (("precision", precision_score), ("recall", recall_score),
                         ("f1", f1_score)):
            want = fn(y_true[p], y_pred[p], average="macro", zero_division=0)
            assert got[name][p] == pytest.approx(want, rel=1e-5), name
    np.testing.assert_allclose(got["loss"], 0.5)
