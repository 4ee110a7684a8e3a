"""Validation shared by the built-in strategies (private; the public helpers live in base.py)."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from evonas.genomes.space import GenomeSpace


def check_common(strategy: Any, owner: str) -> None:
    """Checks the fields every built-in strategy has: ``space`` and ``maximize``."""
    if not isinstance(strategy.space, GenomeSpace):
        got = type(strategy.space).__name__
        raise ValueError(f"{owner}: space must be a GenomeSpace; got {got}")
    if not isinstance(strategy.maximize, bool):
        raise ValueError(f"{owner}: maximize must be True or False; got {strategy.maximize!r}")


def check_told(strategy: Any, genomes: Any, fitness: Any) -> None:
    """Trace-time shape check of a ``tell``, so a wrong shape fails with a readable message."""
    want = (strategy.batch_size, strategy.space.num_genes)
    if jnp.shape(genomes) != want or jnp.shape(fitness) != want[:1]:
        raise ValueError(
            f"{type(strategy).__name__}.tell expects genomes of shape {want} and fitness of "
            f"shape {want[:1]} (what ask returned); got {jnp.shape(genomes)} and "
            f"{jnp.shape(fitness)}"
        )
