"""MAP-Elites: the best genome found in every cell of a grid of user-chosen descriptors.

Mouret & Clune 2015, "Illuminating search spaces by mapping elites", arXiv:1504.04909. The
archive is a grid over ``D`` behaviour descriptors of a genome (for NAS: its parameter count,
depth, FLOPs), each axis cut by the user's bin edges; every cell keeps its elite, the best genome
evaluated whose descriptors fall in it. After a random start, children are mutations (optionally
crossovers) of elites drawn uniformly from the occupied cells, and a child replaces its cell's
elite when it is strictly better. The archive is fixed-shape arrays in the strategy state, so the
whole search stays pure and jit-able.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.operators import CROSSOVERS, mutate, mutate_one
from evonas.strategies.base import State, StrategyBase, from_score, to_score

_OWNER = "MapElites"

Descriptors = Callable[[jax.Array], jax.Array]


@struct.dataclass
class MapElitesState(State):
    """The archive (one slot per cell, flattened row-major over the descriptor grid)."""

    archive: jax.Array  # int32[C, G], each cell's elite (zeros where empty)
    # float32[C], each elite's fitness in the user's direction; the worst value where empty.
    fitness: jax.Array
    occupied: jax.Array  # bool[C]
    ids: jax.Array  # int32[C], each elite's evaluation id (the order it was told in); -1 empty
    count: jax.Array  # int32, individuals told so far
    # int32[B, 2]: per child of the latest ask, the ids of its parents (second -1 without
    # crossover; both -1 for a random child).
    parents: jax.Array


def _check_bins(bins: Any) -> tuple[tuple[float, ...], ...]:
    """Bins as a tuple of D tuples of strictly increasing, finite interior edges."""
    example = "e.g. bins=((1e4, 1e5, 1e6),) for one descriptor cut at three values"
    if isinstance(bins, (str, bytes)) or not isinstance(bins, Sequence) or len(bins) == 0:
        raise ValueError(
            f"{_OWNER}: bins must be a non-empty sequence with one sequence of bin edges per "
            f"descriptor ({example}); got {bins!r}"
        )
    axes = []
    for d, edges in enumerate(bins):
        if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or not edges:
            raise ValueError(
                f"{_OWNER}: bins[{d}] must be a non-empty sequence of increasing bin edges "
                f"({example}); got {edges!r}"
            )
        try:
            values = tuple(float(e) for e in edges)
        except (TypeError, ValueError):
            raise ValueError(f"{_OWNER}: bins[{d}] must hold numbers; got {edges!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{_OWNER}: bins[{d}] must hold finite numbers; got {edges!r}")
        if any(b <= a for a, b in zip(values, values[1:])):
            raise ValueError(
                f"{_OWNER}: bins[{d}] must be strictly increasing; got {list(values)}"
            )
        axes.append(values)
    return tuple(axes)


@dataclasses.dataclass(frozen=True)
class MapElites(StrategyBase):
    """MAP-Elites over integer genomes, with its archive in the state.

    Args:
        space: the genome space.
        batch_size: children per ``ask``.
        descriptors: a jit-able ``genomes int32[B, G] -> float32[B, D]`` (``float32[B]`` for
            ``D = 1``), e.g. ``lambda g: jax.vmap(encoding.cost)(g)["params"][:, None]``.
        bins: ``D`` sequences of strictly increasing interior bin edges; axis ``d`` has
            ``len(bins[d]) + 1`` cells: below the first edge is cell 0, an edge starts the cell
            above it, and above the last edge is the last cell.
        maximize: whether higher fitness is better (one quality objective).
        mutation_rate: per-gene mutation probability; ``None`` (the default) mutates exactly
            one gene per child, so a child never repeats its parent.
        crossover_rate: probability that a child first recombines two elites (uniform
            crossover; 0 = mutation only, as in the paper).
        num_init: how many evaluations are uniform random before elites are varied (and while
            the archive is empty); ``None`` means ``batch_size``.

    Raises:
        ValueError: a missing ``descriptors`` or ``bins`` (both are required), bad bins, a
            descriptor function whose output is not ``[B, len(bins)]``, or a bad
            hyper-parameter.
    """

    space: GenomeSpace
    batch_size: int = 32
    descriptors: Descriptors | None = None
    bins: Sequence[Sequence[float]] | None = None
    maximize: bool = True
    mutation_rate: float | None = None
    crossover_rate: float = 0.0
    num_init: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.descriptors is None and self.bins is None:
            raise ValueError(
                f"{_OWNER} needs descriptors and bins: descriptors=fn(genomes int32[B, G]) -> "
                f"float32[B, D] and bins=D sequences of bin edges, e.g. descriptors=lambda g: "
                f"jax.vmap(encoding.cost)(g)['params'][:, None], bins=((1e4, 1e5, 1e6),)"
            )
        if self.bins is None:
            raise ValueError(
                f"{_OWNER}: descriptors without bins: give bins, one sequence of increasing bin "
                f"edges per descriptor, e.g. bins=((1e4, 1e5, 1e6),)"
            )
        if self.descriptors is None:
            raise ValueError(
                f"{_OWNER}: bins without descriptors: give descriptors, a jit-able "
                f"fn(genomes int32[B, G]) -> float32[B, D] with D = len(bins)"
            )
        if not callable(self.descriptors):
            raise ValueError(
                f"{_OWNER}: descriptors must be a function genomes int32[B, G] -> float32[B, D]; "
                f"got {type(self.descriptors).__name__}"
            )
        object.__setattr__(self, "bins", _check_bins(self.bins))
        if self.mutation_rate is not None:
            object.__setattr__(
                self, "mutation_rate", checks.rate(f"{_OWNER}.mutation_rate", self.mutation_rate)
            )
        object.__setattr__(
            self, "crossover_rate", checks.rate(f"{_OWNER}.crossover_rate", self.crossover_rate)
        )
        if self.num_init is not None:
            num_init = self.num_init
            if isinstance(num_init, bool) or not isinstance(num_init, int) or num_init < 0:
                raise ValueError(
                    f"{_OWNER}: num_init must be a non-negative integer or None; got {num_init!r}"
                )
        # Check the descriptor function's output now, while the error is still about the
        # configuration and not a traceback from inside a search.
        genomes = jax.ShapeDtypeStruct((self.batch_size, self.space.num_genes), jnp.int32)
        try:
            shape = jax.eval_shape(self.descriptors, genomes).shape
        except Exception as err:  # any failure here is a configuration error
            raise ValueError(
                f"{_OWNER}: descriptors failed on genomes of shape {genomes.shape}: {err}"
            ) from err
        self._descriptor_shape(shape, self.batch_size)

    def _descriptor_shape(self, shape: tuple[int, ...], batch: int) -> None:
        dims = len(self.bins)
        if shape != (batch, dims) and not (dims == 1 and shape == (batch,)):
            raise ValueError(
                f"{_OWNER}: descriptors must return float32[B, D] with D = len(bins) = {dims}; "
                f"got shape {shape} for {batch} genomes"
            )

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Cells per descriptor axis: ``len(bins[d]) + 1`` each."""
        return tuple(len(edges) + 1 for edges in self.bins)

    @property
    def num_cells(self) -> int:
        """Cells in the archive (the product of :attr:`grid_shape`)."""
        return math.prod(self.grid_shape)

    @property
    def effective_num_init(self) -> int:
        """``num_init``, or ``batch_size`` when unset."""
        return self.batch_size if self.num_init is None else self.num_init

    def cells(self, genomes: jax.Array) -> jax.Array:
        """Each genome's flat cell index (row-major over :attr:`grid_shape`); -1 where a
        descriptor is NaN. ``int32[B]``; jit-able."""
        values = jnp.asarray(self.descriptors(genomes), jnp.float32)
        self._descriptor_shape(values.shape, jnp.shape(genomes)[0])
        values = values.reshape(values.shape[0], len(self.bins))
        cell = jnp.zeros(values.shape[:1], jnp.int32)
        for d, edges in enumerate(self.bins):  # a loop over descriptor axes, not individuals
            index = jnp.searchsorted(jnp.asarray(edges, jnp.float32), values[:, d], side="right")
            cell = cell * (len(edges) + 1) + index.astype(jnp.int32)
        return jnp.where(jnp.any(jnp.isnan(values), axis=1), -1, cell)

    def _init(self, key: jax.Array) -> MapElitesState:
        """An empty archive (``key`` is unused)."""
        del key
        base = self.initial()
        c, g = self.num_cells, self.space.num_genes
        return MapElitesState(
            **base,
            archive=jnp.zeros((c, g), jnp.int32),
            fitness=jnp.full((c,), base["best_fitness"], jnp.float32),
            occupied=jnp.zeros((c,), bool),
            ids=jnp.full((c,), -1, jnp.int32),
            count=jnp.int32(0),
            parents=jnp.full((self.batch_size, 2), -1, jnp.int32),
        )

    def _ask(self, key: jax.Array, state: MapElitesState) -> tuple[jax.Array, MapElitesState]:
        """``batch_size`` children: random for the first ``num_init`` evaluations (and while the
        archive is empty), else variations of elites drawn uniformly from the occupied cells."""
        b = self.batch_size
        k_pick, k_cross, k_do, k_mutate, k_random = jax.random.split(key, 5)
        logits = jnp.where(state.occupied, 0.0, -jnp.inf)
        picked = jax.random.categorical(k_pick, logits, shape=(2, b))
        a, other = state.archive[picked[0]], state.archive[picked[1]]
        recombine = jax.random.uniform(k_do, (b, 1)) < self.crossover_rate
        if self.crossover_rate > 0.0:
            a = jnp.where(recombine, CROSSOVERS["uniform"](k_cross, a, other), a)
        if self.mutation_rate is None:
            children = mutate_one(k_mutate, a, self.space)
        else:
            children = mutate(k_mutate, a, self.space, self.mutation_rate)
        random = (state.count + jnp.arange(b) < self.effective_num_init) | ~jnp.any(state.occupied)
        lineage = jnp.stack(
            [state.ids[picked[0]], jnp.where(recombine[:, 0], state.ids[picked[1]], -1)], axis=1
        )
        parents = jnp.where(random[:, None], -1, lineage).astype(jnp.int32)
        fresh = self.space.sample(k_random, b)
        return jnp.where(random[:, None], fresh, children), state.replace(parents=parents)

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: MapElitesState) -> MapElitesState:
        """Each genome enters its cell when the cell is empty or it is strictly better.

        Within one batch the best genome per cell competes (the first in batch order on ties);
        a failed evaluation (or a NaN descriptor) never enters the archive.

        Raises:
            ValueError: (at trace time) descriptors not ``[B, len(bins)]``.
        """
        num, c = self.batch_size, self.num_cells
        cell = self.cells(genomes)
        valid = (cell >= 0) & ~jnp.isneginf(scores)
        slot = jnp.where(valid, cell, c)  # invalid rows scatter into a dropped extra cell
        top = jnp.full((c + 1,), -jnp.inf, jnp.float32).at[slot].max(scores)
        is_top = valid & (scores == top[slot])
        winner = jnp.full((c + 1,), num, jnp.int32).at[slot].min(
            jnp.where(is_top, jnp.arange(num, dtype=jnp.int32), num)
        )[:c]
        has = winner < num
        winner = jnp.minimum(winner, num - 1)
        old = to_score(state.fitness, self.maximize)
        better = has & (~state.occupied | (top[:c] > old))
        return state.replace(
            archive=jnp.where(better[:, None], genomes[winner], state.archive),
            fitness=jnp.where(better, from_score(top[:c], self.maximize), state.fitness),
            occupied=state.occupied | better,
            ids=jnp.where(better, state.count + winner, state.ids).astype(jnp.int32),
            count=state.count + num,
        )

    def elites(self, state: MapElitesState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The occupied cells (host side: the count depends on the state's values).

        Returns:
            ``(genomes int32[K, G], fitness float32[K], cells int64[K])`` in cell order; a flat
            cell index maps to per-axis bins with ``np.unravel_index(cells, self.grid_shape)``.
        """
        occupied = np.asarray(state.occupied)
        cells = np.flatnonzero(occupied).astype(np.int64)
        return np.asarray(state.archive)[cells], np.asarray(state.fitness)[cells], cells

