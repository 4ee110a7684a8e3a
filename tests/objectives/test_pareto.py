"""Tests of the host-side Pareto front and the exact hypervolume (evonas.pareto)."""

import itertools
import math

import numpy as np
import pytest

from evonas.objectives import hypervolume, pareto_front


def brute_force_volume(points, reference, maximize):
    """Hypervolume by a grid over every distinct coordinate: a cell is dominated when one point
    is at least as good as the cell's worst corner in every objective."""
    pts = np.asarray(points, float).reshape(-1, len(maximize))
    mask = np.asarray(maximize, bool)
    cost = np.where(mask, -pts, pts)
    ref = np.where(mask, -np.asarray(reference, float), reference)
    cost = cost[~np.isnan(cost).any(axis=1)]
    cost = cost[np.all(cost < ref, axis=1)]
    axes = [np.unique(np.append(cost[:, k], ref[k])) for k in range(len(mask))]
    volume = 0.0
    for cell in itertools.product(*[range(len(a) - 1) for a in axes]):
        low = np.array([axes[k][i] for k, i in enumerate(cell)])
        high = np.array([axes[k][i + 1] for k, i in enumerate(cell)])
        if np.any(np.all(cost <= low, axis=1)):
            volume += float(np.prod(high - low))
    return volume


def inclusion_exclusion_volume(points, reference):
    """Maximised objectives: the union of boxes [reference, p], by inclusion-exclusion."""
    pts = np.asarray(points, float)
    total = 0.0
    for size in range(1, len(pts) + 1):
        for subset in itertools.combinations(range(len(pts)), size):
            corner = pts[list(subset)].min(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.maximum(corner - reference, 0.0)))
    return total


def test_hand_computed_2d():
    staircase = [[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]]
    # Maximised: 3 (first box) + 1 x 2 + 1 x 1 beyond it.
    assert hypervolume(staircase, [0.0, 0.0], [True, True]) == 6.0
    # Minimised against (4, 4): widths 1, 1, 1 at heights 1, 2, 3.
    assert hypervolume(staircase, [4.0, 4.0], [False, False]) == 6.0
    # Accuracy up, cost down: (0.9, 100) and (0.8, 50) against (0.5, 200).
    volume = hypervolume([[0.9, 100.0], [0.8, 50.0]], [0.5, 200.0], [True, False])
    assert volume == pytest.approx(0.4 * 100 + 0.3 * 50)
    assert hypervolume([[2.0]], [0.5], [True]) == 1.5


def test_hand_computed_3d():
    assert hypervolume([[1.0, 1.0, 1.0]], [0.0, 0.0, 0.0], [True] * 3) == 1.0
    # Two 2x1x1 boxes overlapping in the unit cube: 2 + 2 - 1.
    assert hypervolume([[2, 1, 1], [1, 2, 1]], [0, 0, 0], [True] * 3) == 3.0
    # Three of them: 6 - 3 pairwise overlaps + 1 triple overlap.
    assert hypervolume([[2, 1, 1], [1, 2, 1], [1, 1, 2]], [0, 0, 0], [True] * 3) == 4.0
    # A dominated point adds nothing; minimised: the cube from (1, 1, 1) to (3, 3, 3).
    assert hypervolume([[1, 1, 1], [2, 2, 2]], [3, 3, 3], [False] * 3) == 8.0


@pytest.mark.parametrize("num_objectives", [2, 3, 4])
def test_agrees_with_a_brute_force_grid(num_objectives):
    rng = np.random.default_rng(num_objectives)
    for _ in range(25):
        n = int(rng.integers(0, 9))
        points = rng.integers(0, 5, size=(n, num_objectives)).astype(float)  # many ties
        maximize = rng.random(num_objectives) < 0.5
        reference = np.where(maximize, -0.5, 4.5)
        expected = brute_force_volume(points, reference, maximize)
        assert hypervolume(points, reference, maximize) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("num_objectives", [2, 3, 4])
def test_agrees_with_inclusion_exclusion_on_real_values(num_objectives):
    rng = np.random.default_rng(10 + num_objectives)
    for _ in range(10):
        points = rng.random((7, num_objectives))
        expected = inclusion_exclusion_volume(points, np.zeros(num_objectives))
        volume = hypervolume(points, np.zeros(num_objectives), [True] * num_objectives)
        assert volume == pytest.approx(expected, rel=1e-12)


def test_3d_sweep_agrees_with_slices_on_many_points():
    # On a sphere most points are on the front: the 3-D path's staircase is exercised hard.
    rng = np.random.default_rng(0)
    points = np.abs(rng.normal(size=(400, 3)))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    points = np.round(points, 2)  # ties in every coordinate
    reference = np.ones(3)
    # Between consecutive distinct third coordinates the section is the 2-D volume of the points
    # below it.
    levels = np.unique(np.append(points[:, 2], 1.0))
    expected = sum(
        (hi - lo) * hypervolume(points[points[:, 2] <= lo, :2], reference[:2], [False, False])
        for lo, hi in zip(levels[:-1], levels[1:])
    )
    assert hypervolume(points, reference, [False] * 3) == pytest.approx(expected, rel=1e-12)
    # A constant fourth objective multiplies the volume by its distance to the reference.
    four = np.concatenate([points, np.full((400, 1), 0.25)], axis=1)
    assert hypervolume(four, np.ones(4), [False] * 4) == pytest.approx(0.75 * expected)


@pytest.mark.parametrize("num_objectives", [2, 3, 4])
def test_invariant_to_order_and_duplicates(num_objectives):
    rng = np.random.default_rng(1)
    points = rng.random((60, num_objectives))
    reference = np.full(num_objectives, 1.1)
    maximize = [False] * num_objectives
    volume = hypervolume(points, reference, maximize)
    assert volume > 0
    assert hypervolume(points[rng.permutation(60)], reference, maximize) == pytest.approx(volume)
    doubled = np.concatenate([points, points[:30], points[:5]])
    assert hypervolume(doubled, reference, maximize) == pytest.approx(volume)
    # Only the front matters.
    front = points[pareto_front(points, maximize)]
    assert hypervolume(front, reference, maximize) == pytest.approx(volume)


@pytest.mark.parametrize("num_objectives", [2, 3, 4])
def test_negating_a_column_and_flipping_its_direction_changes_nothing(num_objectives):
    rng = np.random.default_rng(2)
    points = rng.random((40, num_objectives))
    maximize = np.array([True, False, True, False][:num_objectives])
    reference = np.where(maximize, -0.1, 1.1)
    volume = hypervolume(points, reference, maximize)
    for column in range(num_objectives):
        flipped, ref, mask = points.copy(), reference.copy(), maximize.copy()
        flipped[:, column] *= -1
        ref[column] *= -1
        mask[column] = not mask[column]
        assert hypervolume(flipped, ref, mask) == pytest.approx(volume)


def test_nan_rows_and_points_not_beyond_the_reference_count_for_nothing():
    points = np.array([[0.9, 100.0], [0.8, 50.0]])
    volume = hypervolume(points, [0.5, 200.0], [True, False])
    extra = np.array([[math.nan, 1.0], [1.0, math.nan], [0.99, 200.0], [0.5, 1.0], [0.4, 1.0]])
    assert hypervolume(np.concatenate([points, extra]), [0.5, 200.0], [True, False]) == volume
    assert hypervolume(extra, [0.5, 200.0], [True, False]) == 0.0
    assert hypervolume(np.zeros((0, 3)), [0.0, 0.0, 0.0], [True] * 3) == 0.0
    assert hypervolume([], [0.0, 0.0], [True, False]) == 0.0


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match=r"points of shape \[N, M\] with M = 2.*got \(2, 3\)"):
        hypervolume([[1, 2, 3], [4, 5, 6]], [0, 0], [True, True])
    with pytest.raises(ValueError, match=r"reference of shape \[M\].*got \(3,\) and \(2,\)"):
        hypervolume([[1, 2]], [0, 0, 0], [True, True])
    with pytest.raises(ValueError, match="reference must not contain NaN"):
        hypervolume([[1, 2]], [0, math.nan], [True, True])


def test_library_exports():
    import evonas

    assert evonas.hypervolume is hypervolume
    assert evonas.pareto_front is pareto_front
    points = [[0.9, 100], [0.8, 50], [0.85, 200], [0.7, 10]]
    assert pareto_front(points, [True, False]).tolist() == [0, 1, 3]


def test_two_objective_front_equals_the_pairwise_definition_with_ties_and_nans():
    rng = np.random.default_rng(5)
    for trial in range(40):
        points = rng.integers(0, 6, size=(int(rng.integers(1, 60)), 2)).astype(float)
        points[rng.random(len(points)) < 0.1, int(rng.integers(0, 2))] = np.nan
        maximize = [bool(m) for m in rng.integers(0, 2, size=2)]
        cost = np.where(maximize, -points, points)
        brute = [i for i, p in enumerate(cost) if not np.isnan(p).any() and not any(
            (q <= p).all() and (q < p).any() for q in cost if not np.isnan(q).any())]
        assert pareto_front(points, maximize).tolist() == brute, trial
