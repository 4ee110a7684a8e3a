"""GenomeSpace and the encoding registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from evonas.genomes import GenomeSpace

SPACE = GenomeSpace.from_genes({"depth": 3, "width": (16, 32, 64), "act": ("relu", "gelu")})


def test_space_shape_facts():
    assert SPACE.num_genes == 3
    assert SPACE.size == 18
    assert SPACE.cardinalities == (3, 3, 2)
    np.testing.assert_array_equal(SPACE.upper, [3, 3, 2])


def test_sample_is_inside_and_covers_every_value():
    genomes = jax.jit(SPACE.sample, static_argnums=1)(jax.random.key(0), 512)
    assert genomes.shape == (512, 3) and genomes.dtype == jnp.int32
    assert bool(SPACE.contains(genomes).all())
    for gene, card in enumerate(SPACE.cardinalities):
        assert set(np.unique(genomes[:, gene]).tolist()) == set(range(card))


def test_contains_and_clip():
    bad = jnp.array([[0, 3, 1], [-1, 0, 0], [2, 2, 1]])
    np.testing.assert_array_equal(SPACE.contains(bad), [False, False, True])
    assert bool(SPACE.contains(SPACE.clip(bad)).all())


def test_dict_round_trip_and_index_round_trip():
    for rank in range(SPACE.size):
        genome = SPACE.from_index(rank)
        assert SPACE.index(genome) == rank
        assert SPACE.from_dict(SPACE.to_dict(genome)).tolist() == genome.tolist()
    assert SPACE.to_dict([2, 1, 0]) == {"depth": 2, "width": 32, "act": "relu"}
    # A label wins over an index; an integer that is not a label is an index.
    assert SPACE.from_dict({"depth": 1, "width": 64, "act": 1}).tolist() == [1, 2, 1]


def test_key_is_exact():
    assert SPACE.key([1, 2, 0]) == SPACE.key(np.array([1, 2, 0], np.int64))
    assert SPACE.key([1, 2, 0]) != SPACE.key([1, 2, 1])


@pytest.mark.parametrize(
    "genome, message",
    [
        ([0, 3, 0], "gene 'width' = 3 is outside its range; allowed 0..2"),
        ([0, 0], "has 3 genes"),
        ([0.5, 0, 0], "genes are integers"),
    ],
)
def test_validate_names_the_gene_and_the_range(genome, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SPACE.validate(genome)


def test_from_dict_errors():
    with pytest.raises(ValueError, match="unknown gene 'widht' \\(did you mean 'width'\\?\\)"):
        SPACE.from_dict({"depth": 0, "widht": 16, "act": "relu"})
    allowed = "'act' = 'tanh' is not allowed; allowed \\['relu', 'gelu'\\]"
    with pytest.raises(ValueError, match=allowed):
        SPACE.from_dict({"depth": 0, "width": 16, "act": "tanh"})
    with pytest.raises(ValueError, match="missing genes \\['act'\\]"):
        SPACE.from_dict({"depth": 0, "width": 16})


def test_bad_spaces():
    with pytest.raises(ValueError, match="cardinality >= 1; got 0"):
        GenomeSpace(("a",), (0,))
    with pytest.raises(ValueError, match="unique"):
        GenomeSpace(("a", "a"), (2, 2))
    with pytest.raises(ValueError, match="at least one gene"):
        GenomeSpace((), ())


def test_space_is_a_static_jit_argument():
    f = jax.jit(lambda key, space: space.sample(key, 4), static_argnums=1)
    assert f(jax.random.key(1), SPACE).shape == (4, 3)
    assert hash(SPACE) == hash(GenomeSpace.from_genes({"depth": 3, "width": (16, 32, 64),
                                                       "act": ("relu", "gelu")}))


def test_rank_is_the_host_index_and_unrank_inverts_it():
    genomes = np.stack([SPACE.from_index(i) for i in range(SPACE.size)])
    ranks = jax.jit(SPACE.rank)(genomes)
    np.testing.assert_array_equal(ranks, np.arange(SPACE.size))
    np.testing.assert_array_equal(jax.jit(SPACE.unrank)(ranks), genomes)
    assert SPACE.place_values.tolist() == [6, 2, 1]
    huge = GenomeSpace.from_genes({f"g{i}": 10 for i in range(10)})
    with pytest.raises(ValueError, match=r"fewer than 2\*\*31 genomes.*10000000000"):
        huge.rank(jnp.zeros((1, 10), jnp.int32))
