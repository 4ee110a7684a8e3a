"""Grid search and local search.

* :class:`GridSearch` asks every genome of the space (or of a sub-grid: a list of allowed values
  per gene) exactly once, in mixed-radix order, the first gene most significant; after the last
  it starts again (the runner's cache makes repeats free).
* :class:`LocalSearch` is first-improvement hill climbing over single-gene neighbours with random
  restarts (White, Nolen, Savani & Dooley 2021, "Exploring the Loss Landscape in Neural
  Architecture Search", UAI, found this simple baseline competitive on NAS benchmarks). The
  neighbours of the current genome are visited in a random order, ``batch_size`` per ``ask``; the
  first of a batch that beats the current one becomes current. When every neighbour was visited
  without improvement the current genome is a local optimum and the search restarts from a
  random genome.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.genomes.space import GenomeSpace
from evonas.strategies.base import State, StrategyBase

GRID_MAX = 1_000_000  # genomes; a larger grid is refused unless max_size is raised


@struct.dataclass
class GridSearchState(State):
    """How far the enumeration went (and the base's best so far)."""

    position: jax.Array  # int32, genomes asked so far (the next grid index, before wrapping)
    parents: jax.Array  # int32[batch_size], always -1


@dataclasses.dataclass(frozen=True)
class GridSearch(StrategyBase):
    """Every genome of a (sub-)grid of the space, in order.

    Args:
        space: the genome space.
        values: optional ``{gene name: allowed values}`` (each value as the space's choices
            name it, or its index); genes not named keep all their values.
        batch_size: genomes per ``ask``.
        max_size: the largest grid accepted (default 1,000,000 genomes).
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    values: Mapping[str, Sequence[Any]] | None = None
    batch_size: int = 16
    max_size: int = GRID_MAX
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        owner = "GridSearch"
        checks.positive_int(f"{owner}.max_size", self.max_size)
        object.__setattr__(self, "values", _freeze(self.values))
        size = self.size
        if size > self.max_size:
            sizes = " x ".join(str(len(v)) for v in self.allowed)
            raise ValueError(
                f"{owner}: the grid has {size:,} genomes ({sizes}), more than max_size="
                f"{self.max_size:,}; restrict it with values={{gene: [values]}}, raise "
                f"max_size, or use random_search or local_search")
        if size >= 2**31:
            raise ValueError(f"{owner}: the grid has {size:,} genomes; at most 2**31 - 1 can "
                             f"be enumerated")

    @property
    def allowed(self) -> tuple[tuple[int, ...], ...]:
        """Each gene's allowed value indices, in order."""
        chosen = dict(self.values or ())
        unknown = sorted(set(chosen) - set(self.space.names))
        if unknown:
            raise ValueError(f"GridSearch.values: unknown gene {unknown[0]!r}; the space's "
                             f"genes are {list(self.space.names)}")
        out = []
        for g, name in enumerate(self.space.names):
            if name not in chosen:
                out.append(tuple(range(self.space.cardinalities[g])))
                continue
            indices = []
            for value in chosen[name]:
                indices.append(_index_of(self.space, g, value))
            if not indices or len(set(indices)) != len(indices):
                raise ValueError(f"GridSearch.values[{name!r}] must list distinct values of the "
                                 f"gene; got {list(chosen[name])}")
            out.append(tuple(indices))
        return tuple(out)

    @property
    def size(self) -> int:
        """Genomes in the grid."""
        return int(np.prod([len(v) for v in self.allowed], dtype=object))

    def _tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        allowed = self.allowed
        width = max(len(v) for v in allowed)
        table = np.zeros((len(allowed), width), np.int32)
        for g, values in enumerate(allowed):
            table[g, :len(values)] = values
        radix = np.asarray([len(v) for v in allowed], np.int64)
        place = np.ones(len(allowed), np.int64)
        for g in range(len(allowed) - 2, -1, -1):
            place[g] = place[g + 1] * radix[g + 1]
        return table, radix.astype(np.int32), place.astype(np.int32)

    def genomes_at(self, positions: jax.Array) -> jax.Array:
        """The grid's genomes at ``positions`` (``int32[B]``, wrapping): ``int32[B, G]``."""
        table, radix, place = self._tables()
        digits = (jnp.asarray(positions, jnp.int32)[:, None] % self.size) // place % radix
        return jnp.take_along_axis(jnp.asarray(table)[None], digits[..., None], axis=2)[..., 0]

    def _init(self, key: jax.Array) -> GridSearchState:
        """The enumeration's start (``key`` is unused)."""
        del key
        return GridSearchState(**self.initial(), position=jnp.int32(0),
                               parents=jnp.full((self.batch_size,), -1, jnp.int32))

    def _ask(self, key: jax.Array, state: GridSearchState) -> tuple[jax.Array, GridSearchState]:
        """The next ``batch_size`` genomes of the grid (``key`` is unused)."""
        del key
        positions = state.position + jnp.arange(self.batch_size, dtype=jnp.int32)
        return self.genomes_at(positions), state

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: GridSearchState) -> GridSearchState:
        """Advances the enumeration (the base records the best)."""
        return state.replace(position=(state.position + self.batch_size) % self.size)


def _freeze(values: Any) -> tuple | None:
    if values is None:
        return None
    if isinstance(values, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in values):
        return values
    if not isinstance(values, Mapping):
        raise ValueError(f"GridSearch.values must be a mapping of gene name to a list of "
                         f"values; got {values!r}")
    out = []
    for name, chosen in values.items():
        if isinstance(chosen, (str, bytes)) or not isinstance(chosen, Sequence):
            raise ValueError(f"GridSearch.values[{name!r}] must be a list of values; got "
                             f"{chosen!r}")
        out.append((name, tuple(chosen)))
    return tuple(out)


def _index_of(space: GenomeSpace, gene: int, value: Any) -> int:
    """The index of ``value`` in gene ``gene``: a named choice, or an index."""
    names = space.choices[gene] if space.choices else None
    if names is not None and value in names:
        return names.index(value)
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (
            0 <= value < space.cardinalities[gene]):
        return int(value)
    allowed = list(names) if names is not None else f"0..{space.cardinalities[gene] - 1}"
    raise ValueError(f"GridSearch.values[{space.names[gene]!r}]: {value!r} is not a value of "
                     f"the gene; allowed: {allowed}")


# -- local search ------------------------------------------------------------------------------


@struct.dataclass
class LocalSearchState(State):
    """The current genome and its neighbours' visiting order (and the base's best so far)."""

    key: jax.Array  # a PRNG key, split at every move and restart
    current: jax.Array  # int32[G]
    current_score: jax.Array  # float32, higher is better; NaN = not evaluated yet
    current_id: jax.Array  # int32, the current genome's evaluation id (-1 before)
    order: jax.Array  # int32[N]: a permutation of the N single-gene neighbours
    position: jax.Array  # int32, neighbours of ``current`` visited so far
    restarts: jax.Array  # int32, local optima reached
    count: jax.Array  # int32, genomes told so far
    kinds: jax.Array  # int32[batch_size] of the last ask: 0 current, 1 neighbour, 2 restart
    parents: jax.Array  # int32[batch_size]: a neighbour's parent is the current genome


@dataclasses.dataclass(frozen=True)
class LocalSearch(StrategyBase):
    """First-improvement hill climbing over single-gene neighbours with random restarts.

    Args:
        space: the genome space.
        batch_size: genomes per ``ask`` (neighbours visited at a time).
        maximize: whether higher fitness is better.
    """

    space: GenomeSpace
    batch_size: int = 8
    maximize: bool = True

    def __post_init__(self):
        super().__post_init__()
        if self.num_neighbours == 0:
            raise ValueError("LocalSearch: the space has no gene with more than one value, so "
                             "no genome has a neighbour")

    @property
    def num_neighbours(self) -> int:
        """Single-gene neighbours of every genome: ``sum(cardinality - 1)``."""
        return int(sum(c - 1 for c in self.space.cardinalities))

    def neighbours(self, genome: jax.Array) -> jax.Array:
        """``int32[N, G]``: every genome differing from ``genome`` in exactly one gene."""
        genes, shifts = [], []
        for g, c in enumerate(self.space.cardinalities):
            genes += [g] * (c - 1)
            shifts += list(range(1, c))
        genes, shifts = jnp.asarray(genes), jnp.asarray(shifts)
        upper = jnp.asarray(self.space.cardinalities)
        values = (genome[genes] + shifts) % upper[genes]
        rows = jnp.broadcast_to(genome, (len(genes), self.space.num_genes))
        return rows.at[jnp.arange(len(genes)), genes].set(values.astype(jnp.int32))

    def _restart(self, key: jax.Array, state: LocalSearchState) -> LocalSearchState:
        k_next, k_genome, k_order = jax.random.split(key, 3)
        return state.replace(
            key=k_next, current=self.space.sample(k_genome, 1)[0],
            current_score=jnp.float32(jnp.nan), current_id=jnp.int32(-1),
            order=jax.random.permutation(k_order, self.num_neighbours).astype(jnp.int32),
            position=jnp.int32(0))

    def _init(self, key: jax.Array) -> LocalSearchState:
        """A random starting genome, not yet evaluated."""
        n = self.num_neighbours
        state = LocalSearchState(
            **self.initial(), key=key, current=jnp.zeros((self.space.num_genes,), jnp.int32),
            current_score=jnp.float32(jnp.nan), current_id=jnp.int32(-1),
            order=jnp.arange(n, dtype=jnp.int32), position=jnp.int32(0),
            restarts=jnp.int32(0), count=jnp.int32(0),
            kinds=jnp.zeros((self.batch_size,), jnp.int32),
            parents=jnp.full((self.batch_size,), -1, jnp.int32))
        return self._restart(key, state)

    def _ask(self, key: jax.Array, state: LocalSearchState
             ) -> tuple[jax.Array, LocalSearchState]:
        """The current genome first if it is not evaluated yet, then its next unvisited
        neighbours; rows past the last neighbour are random genomes (restart candidates)."""
        fresh = jnp.isnan(state.current_score)
        slot = jnp.arange(self.batch_size) - fresh.astype(jnp.int32)  # neighbour slot per row
        index = state.position + slot
        visiting = (slot >= 0) & (index < self.num_neighbours)
        neighbours = self.neighbours(state.current)
        chosen = neighbours[state.order[jnp.clip(index, 0, self.num_neighbours - 1)]]
        random = self.space.sample(key, self.batch_size)
        kinds = jnp.where(slot < 0, 0, jnp.where(visiting, 1, 2)).astype(jnp.int32)
        genomes = jnp.where((kinds == 0)[:, None], state.current[None],
                            jnp.where((kinds == 1)[:, None], chosen, random))
        parents = jnp.where(kinds == 1, state.current_id, -1).astype(jnp.int32)
        return genomes, state.replace(kinds=kinds, parents=parents)

    def _tell(self, key: jax.Array, genomes: jax.Array, scores: jax.Array,
              state: LocalSearchState) -> LocalSearchState:
        """Moves to the first improving neighbour; restarts at a local optimum (from the
        state's own key, split at every move: the search's course is its init key's)."""
        del key
        ids = state.count + jnp.arange(self.batch_size, dtype=jnp.int32)
        kinds = state.kinds
        was_current = kinds[0] == 0
        current_score = jnp.where(was_current, scores[0], state.current_score)
        current_id = jnp.where(was_current, ids[0], state.current_id)
        improving = (kinds == 1) & (scores > current_score)
        first = jnp.argmax(improving)
        moved = improving.any()
        visited = jnp.sum(kinds == 1)
        position = state.position + visited
        exhausted = ~moved & (position >= self.num_neighbours)
        restart_rows = kinds == 2
        k_next, k_order, k_restart = jax.random.split(state.key, 3)
        order = jax.random.permutation(k_order, self.num_neighbours).astype(jnp.int32)
        # A local optimum: the best restart candidate of this batch (already evaluated) becomes
        # current; with none in the batch, a random genome is asked next.
        best_restart = jnp.argmax(jnp.where(restart_rows, scores, -jnp.inf))
        have_restart = restart_rows.any()
        next_state = state.replace(key=k_next, current_score=current_score,
                                   current_id=current_id, position=position)
        move = next_state.replace(current=genomes[first], current_score=scores[first],
                                  current_id=ids[first], order=order, position=jnp.int32(0))
        jump = next_state.replace(current=genomes[best_restart],
                                  current_score=scores[best_restart],
                                  current_id=ids[best_restart], order=order,
                                  position=jnp.int32(0))
        fresh = self._restart(k_restart, next_state)
        # Keys are not selectable with where: every candidate gets k_next afterwards.
        move, jump, fresh, next_state = (s.replace(key=None)
                                         for s in (move, jump, fresh, next_state))
        pick = lambda a, b, c: jax.tree.map(lambda x, y: jnp.where(c, x, y), a, b)
        new = pick(move, next_state, moved)
        new = pick(pick(jump, fresh, have_restart), new, exhausted).replace(key=k_next)
        return new.replace(restarts=state.restarts + exhausted.astype(jnp.int32),
                           count=state.count + self.batch_size)
