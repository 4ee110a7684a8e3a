"""Repair: map arbitrary integer genomes back into a space."""

from __future__ import annotations

import jax

from evonas.genomes.space import GenomeSpace


def repair(genomes: jax.Array, space: GenomeSpace) -> jax.Array:
    """Clamps every gene into ``0 .. card - 1``; genomes already in the space are unchanged.

    Args:
        genomes: an integer array ``[..., G]`` (any values).
        space: the genome space.

    Returns:
        ``int32[..., G]`` genomes inside ``space``.
    """
    return space.clip(genomes)
