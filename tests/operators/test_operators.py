"""Property tests of evonas.operators over random spaces, populations and keys."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evonas.genomes import GenomeSpace
from evonas.operators import (
    CROSSOVERS,
    first_occurrence,
    genome_hash,
    mutate,
    mutate_one,
    repair,
    tournament_contestants,
    tournament_selection,
    truncation_selection,
    uniform_crossover,
)

FEW = settings(max_examples=25, deadline=None)


@st.composite
def populations(draw, size=6):
    """A random space (1..8 genes, cardinalities 1..9), an in-space population and a key.

    The population size is fixed so that compiled programs are shared across examples (one per
    number of genes); the operators are row-wise, so the row count adds no coverage.
    """
    cards = draw(st.lists(st.integers(1, 9), min_size=1, max_size=8))
    space = GenomeSpace(tuple(f"g{i}" for i in range(len(cards))), tuple(cards))
    row = st.tuples(*[st.integers(0, c - 1) for c in cards])
    rows = draw(st.lists(row, min_size=size, max_size=size))
    key = jax.random.key(draw(st.integers(0, 2**31 - 1)))
    return space, jnp.asarray(rows, jnp.int32).reshape(size, len(cards)), key


def _mutable(space):
    return np.asarray(space.cardinalities) > 1


@FEW
@given(populations())
def test_mutate_one_changes_exactly_one_mutable_gene(case):
    space, genomes, key = case
    children = np.asarray(mutate_one(key, genomes, space))
    assert children.dtype == np.int32 and children.shape == genomes.shape
    assert np.all(space.contains(children))
    changed = children != np.asarray(genomes)
    expected = 1 if _mutable(space).any() else 0
    np.testing.assert_array_equal(changed.sum(axis=1), expected)
    assert not changed[:, ~_mutable(space)].any()


@FEW
@given(populations(), st.floats(0.0, 1.0))
def test_mutate_stays_in_space_and_only_touches_mutable_genes(case, rate):
    space, genomes, key = case
    children = np.asarray(mutate(key, genomes, space, rate))
    assert children.dtype == np.int32
    assert np.all(space.contains(children))
    assert not (children != np.asarray(genomes))[:, ~_mutable(space)].any()


@FEW
@given(populations())
def test_mutate_rate_zero_is_identity_and_rate_one_changes_every_mutable_gene(case):
    space, genomes, key = case
    np.testing.assert_array_equal(mutate(key, genomes, space, 0.0), genomes)
    changed = np.asarray(mutate(key, genomes, space, 1.0)) != np.asarray(genomes)
    np.testing.assert_array_equal(changed, np.broadcast_to(_mutable(space), changed.shape))


def test_mutate_rate_is_the_fraction_of_changed_genes():
    space = GenomeSpace.from_genes({f"g{i}": 5 for i in range(10)})
    genomes = space.sample(jax.random.key(0), 2000)
    changed = mutate(jax.random.key(1), genomes, space, 0.3) != genomes
    assert abs(float(changed.mean()) - 0.3) < 0.01
    # The new value is uniform over the 4 other values: each offset about a quarter of the time.
    offsets = np.asarray((mutate(jax.random.key(2), genomes, space, 1.0) - genomes) % 5)
    np.testing.assert_allclose(np.bincount(offsets.ravel(), minlength=5)[1:] / offsets.size,
                               0.25, atol=0.01)


def _segments(mask):
    """Number of runs of True in each row."""
    padded = np.pad(mask.astype(int), ((0, 0), (1, 0)))
    return (np.diff(padded, axis=1) == 1).sum(axis=1)


@FEW
@given(populations(), st.sampled_from(sorted(CROSSOVERS)))
def test_crossover_children_take_each_gene_from_a_parent(case, name):
    space, genomes, key = case
    k_perm, k_cross = jax.random.split(key)
    a, b = genomes, jax.random.permutation(k_perm, genomes)
    children = np.asarray(CROSSOVERS[name](k_cross, a, b))
    assert children.dtype == np.int32 and children.shape == a.shape
    assert np.all(space.contains(children))
    assert np.all((children == a) | (children == b))
    # With all-0 and all-1 parents, a child shows which genes it took from b.
    from_b = np.asarray(CROSSOVERS[name](k_cross, jnp.zeros_like(a), jnp.ones_like(b))) == 1
    if name == "one_point":  # a prefix of a, the rest of b; each parent used from 2 genes on
        assert (np.diff(from_b.astype(int), axis=1) >= 0).all()
        assert not from_b[:, 0].any() and (from_b[:, -1].all() or space.num_genes == 1)
    if name == "two_point":  # one non-empty contiguous segment of b
        np.testing.assert_array_equal(_segments(from_b), 1)


def test_uniform_crossover_swap_prob():
    a = jnp.zeros((1000, 10), jnp.int32)
    b = jnp.ones((1000, 10), jnp.int32)
    assert abs(float(uniform_crossover(jax.random.key(0), a, b, 0.2).mean()) - 0.2) < 0.01
    np.testing.assert_array_equal(uniform_crossover(jax.random.key(0), a, b, 0.0), a)


def test_crossover_rejects_mismatched_parents():
    with pytest.raises(ValueError, match=r"same shape; got \(2, 3\) and \(2, 4\)"):
        uniform_crossover(jax.random.key(0), jnp.zeros((2, 3)), jnp.zeros((2, 4)))


@st.composite
def score_arrays(draw, size=8):
    # No subnormals: XLA on CPU flushes them to zero, so they tie with 0 there but not in numpy.
    values = st.one_of(st.just(-np.inf), st.floats(-10, 10, width=32, allow_subnormal=False))
    scores = draw(st.lists(values, min_size=size, max_size=size))
    return jnp.asarray(scores, jnp.float32), jax.random.key(draw(st.integers(0, 2**31 - 1)))


@FEW
@given(score_arrays())
def test_tournament_winner_is_the_best_contestant_and_never_a_failed_one(case):
    scores, key = case
    num = 6
    size = scores.shape[0]
    winners = np.asarray(tournament_selection(key, scores, num, size))
    assert winners.dtype == np.int32 and winners.shape == (num,)
    contestants = np.asarray(tournament_contestants(key, size, num, size))
    s = np.asarray(scores)
    np.testing.assert_array_equal(s[winners], s[contestants].max(axis=1))
    has_finite = np.isfinite(s[contestants]).any(axis=1)
    assert np.isfinite(s[winners])[has_finite].all()


def test_tournament_prefers_good_scores_and_treats_nan_as_failed():
    scores = jnp.asarray([np.nan, 0.0, 1.0, 2.0, -np.inf], jnp.float32)
    winners = np.asarray(tournament_selection(jax.random.key(0), scores, 4000, 2))
    # P(winner = i) for size-2 tournaments over 5 ranked items: (2 * rank + 1) / 25.
    freq = np.bincount(winners, minlength=5) / winners.size
    np.testing.assert_allclose(freq[[3, 2, 1]], [9 / 25, 7 / 25, 5 / 25], atol=0.02)
    assert freq[0] + freq[4] < 0.2  # only a tournament of two failed ones picks a failed one


@FEW
@given(score_arrays(), st.integers(0, 8))
def test_truncation_selects_the_best(case, num):
    scores, _ = case
    num = min(num, scores.shape[0])
    chosen = np.asarray(truncation_selection(scores, num))
    s = np.asarray(scores)
    assert len(set(chosen.tolist())) == num
    np.testing.assert_array_equal(s[chosen], np.sort(s)[::-1][:num])


def test_truncation_rejects_too_many():
    with pytest.raises(ValueError, match="num must be in 0..3"):
        truncation_selection(jnp.zeros(3), 4)


@FEW
@given(populations(), st.integers(-20, 20))
def test_repair_maps_any_integers_into_the_space(case, shift):
    space, genomes, _ = case
    np.testing.assert_array_equal(repair(genomes, space), genomes)
    fixed = repair(genomes * 3 + shift, space)
    assert fixed.dtype == jnp.int32 and bool(jnp.all(space.contains(fixed)))


@FEW
@given(populations(size=12))
def test_hash_and_first_occurrence_agree_with_exact_comparison(case):
    space, genomes, _ = case
    g = np.asarray(genomes)
    hashes = np.asarray(genome_hash(genomes))
    assert hashes.dtype == np.uint32 and hashes.shape == (g.shape[0], 2)
    _, first_index = np.unique(g, axis=0, return_index=True)
    expected = np.zeros(g.shape[0], bool)
    expected[first_index] = True
    np.testing.assert_array_equal(first_occurrence(genomes), expected)
    # Equal genomes hash equal, distinct ones distinct.
    same_genome = (g[:, None] == g[None]).all(-1)
    same_hash = (hashes[:, None] == hashes[None]).all(-1)
    np.testing.assert_array_equal(same_hash, same_genome)


def test_hash_separates_every_genome_of_a_space():
    space = GenomeSpace.from_genes({f"g{i}": 4 for i in range(8)})
    every = jnp.asarray(np.stack([space.from_index(i) for i in range(space.size)]))
    hashes = np.asarray(genome_hash(every))
    as_64 = hashes[:, 0].astype(np.uint64) << np.uint64(32) | hashes[:, 1]
    assert len(np.unique(as_64)) == space.size == 65536
    # Each word alone is a decent 32-bit hash: 0.5 colliding pairs expected, 8+ has odds 1e-8.
    assert len(np.unique(hashes[:, 0])) >= space.size - 8
    assert len(np.unique(hashes[:, 1])) >= space.size - 8
