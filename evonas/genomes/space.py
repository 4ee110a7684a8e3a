"""Genome spaces: fixed-length integer vectors, each gene with its own cardinality."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class GenomeSpace:
    """A fixed number of named genes; gene ``i`` takes the integers ``0 .. cardinalities[i] - 1``.

    A genome is an ``int32[G]`` vector, a population an ``int32[P, G]`` array. ``choices``
    optionally names the values of each gene (``("relu", "gelu")``), for readable dicts and
    descriptions.
    The space is hashable, so it can be a static argument of ``jax.jit``.
    """

    names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    choices: tuple[tuple[Any, ...] | None, ...] = ()

    def __post_init__(self):
        names = tuple(str(n) for n in self.names)
        cards = tuple(int(c) for c in self.cardinalities)
        choices = tuple(self.choices) or (None,) * len(names)
        if not names:
            raise ValueError("a GenomeSpace needs at least one gene; got none")
        if len(cards) != len(names):
            raise ValueError(
                f"GenomeSpace got {len(names)} gene names but {len(cards)} cardinalities"
            )
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"gene names must be unique; repeated: {dup}")
        for name, card in zip(names, cards):
            if card < 1:
                raise ValueError(f"gene {name!r} must have cardinality >= 1; got {card}")
        if len(choices) != len(names):
            raise ValueError(f"GenomeSpace got {len(names)} genes but {len(choices)} choice lists")
        fixed = []
        for name, card, ch in zip(names, cards, choices):
            if ch is not None:
                ch = tuple(ch)
                if len(ch) != card:
                    raise ValueError(
                        f"gene {name!r} has cardinality {card} but {len(ch)} named choices"
                    )
            fixed.append(ch)
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "cardinalities", cards)
        object.__setattr__(self, "choices", tuple(fixed))

    @classmethod
    def from_genes(cls, genes: Mapping[str, int | Sequence[Any]]) -> GenomeSpace:
        """Builds a space from ``{name: cardinality}`` or ``{name: [choice, ...]}``, in order."""
        names, cards, choices = [], [], []
        for name, spec in genes.items():
            names.append(name)
            if isinstance(spec, (int, np.integer)):
                cards.append(int(spec))
                choices.append(None)
            else:
                spec = tuple(spec)
                cards.append(len(spec))
                choices.append(spec)
        return cls(tuple(names), tuple(cards), tuple(choices))

    # -- shape facts -------------------------------------------------------------------------

    @property
    def num_genes(self) -> int:
        return len(self.names)

    @property
    def size(self) -> int:
        """Number of distinct genomes in the space (a Python int, may be huge)."""
        return math.prod(self.cardinalities)

    @property
    def upper(self) -> jax.Array:
        """``int32[G]``: the exclusive upper bound of every gene."""
        return jnp.asarray(self.cardinalities, dtype=jnp.int32)

    @property
    def place_values(self) -> np.ndarray:
        """``int64[G]``: the mixed-radix place value of each gene (first gene most significant),
        so ``rank = genome @ place_values``."""
        places = np.ones(self.num_genes, np.int64)
        for i in range(self.num_genes - 2, -1, -1):
            places[i] = places[i + 1] * self.cardinalities[i + 1]
        return places

    def _check_rankable(self) -> None:
        if self.size >= 2**31:
            raise ValueError(
                f"rank needs a space of fewer than 2**31 genomes (ranks are int32 inside jit); "
                f"this one has {self.size}; index a table by a lookup function instead"
            )

    # -- array ops (jit-able) ------------------------------------------------------------------

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` genomes drawn uniformly from the space: ``int32[n, G]``."""
        u = jax.random.uniform(key, (n, self.num_genes))
        genes = jnp.floor(u * self.upper).astype(jnp.int32)
        return jnp.minimum(genes, self.upper - 1)

    def contains(self, genomes: jax.Array) -> jax.Array:
        """Whether each genome lies inside the space: ``bool[...]`` over the leading axes."""
        genomes = jnp.asarray(genomes)
        return jnp.all((genomes >= 0) & (genomes < self.upper), axis=-1)

    def clip(self, genomes: jax.Array) -> jax.Array:
        """Clamps every gene into its range (the simplest repair)."""
        return jnp.clip(jnp.asarray(genomes, jnp.int32), 0, self.upper - 1)

    def rank(self, genomes: jax.Array) -> jax.Array:
        """The mixed-radix rank of each genome, ``int32[...]`` over the leading axes (jit-able).

        The first gene is the most significant, as in :meth:`index`; genomes inside the space
        map one to one onto ``0 .. size - 1``, which is how a tabular benchmark stored in rank
        order is looked up (``column[space.rank(genomes)]``). Genomes outside the space give
        meaningless ranks: check them with :meth:`contains` (or :meth:`clip` them) first.

        Raises:
            ValueError: the space has ``2**31`` genomes or more (int32 ranks would overflow).
        """
        self._check_rankable()
        return jnp.asarray(genomes, jnp.int32) @ jnp.asarray(self.place_values, jnp.int32)

    def unrank(self, ranks: jax.Array) -> jax.Array:
        """Inverse of :meth:`rank`: the genomes ``int32[..., G]`` of ranks ``int[...]``
        (jit-able; ranks outside ``0 .. size - 1`` wrap around)."""
        self._check_rankable()
        ranks = jnp.asarray(ranks, jnp.int32)[..., None]
        return (ranks // jnp.asarray(self.place_values, jnp.int32)) % self.upper

    # -- host-side helpers -------------------------------------------------------------------

    def validate(self, genome: Any) -> np.ndarray:
        """Checks one genome on the host and returns it as ``int32[G]``.

        Raises:
            ValueError: naming the gene, the bad value and the allowed range.
        """
        try:
            arr = np.asarray(genome)
        except (OverflowError, ValueError):
            arr = np.asarray(genome, dtype=object)
        if arr.shape != (self.num_genes,):
            raise ValueError(
                f"a genome of this space has {self.num_genes} genes {list(self.names)}; "
                f"got shape {arr.shape}"
            )
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            # Python ints too large for int64, or values of no numeric type: check one by one.
            for name, card, value in zip(self.names, self.cardinalities, arr.tolist()):
                ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                    value, bool) and float(value).is_integer() and 0 <= value < card
                if not ok:
                    raise ValueError(f"gene {name!r} = {value!r} is outside its range; allowed "
                                     f"0..{card - 1}")
            arr = np.asarray([int(v) for v in arr.tolist()])
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr)) or not np.all(np.equal(np.mod(arr, 1), 0)):
                raise ValueError(f"genes are integers; got {arr.tolist()}")
        arr = arr.astype(np.int64)
        for name, card, value in zip(self.names, self.cardinalities, arr):
            if not 0 <= value < card:
                raise ValueError(
                    f"gene {name!r} = {int(value)} is outside its range; allowed 0..{card - 1}"
                )
        return arr.astype(np.int32)

    def key(self, genome: Any) -> bytes:
        """An exact, collision-free host-side key for de-duplication caches."""
        return np.asarray(genome, dtype=np.int32).tobytes()

    def to_dict(self, genome: Any) -> dict[str, Any]:
        """A readable ``{gene name: value}`` dict, using the named choices where there are any."""
        arr = self.validate(genome)
        out = {}
        for name, ch, value in zip(self.names, self.choices, arr):
            out[name] = ch[int(value)] if ch is not None else int(value)
        return out

    def from_dict(self, values: Mapping[str, Any]) -> np.ndarray:
        """Inverse of :meth:`to_dict`; accepts choice labels or integer values per gene."""
        unknown = [k for k in values if k not in self.names]
        if unknown:
            hint = difflib.get_close_matches(unknown[0], self.names, n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"unknown gene {unknown[0]!r}{extra}; genes are {list(self.names)}")
        missing = [n for n in self.names if n not in values]
        if missing:
            raise ValueError(f"missing genes {missing}; a genome needs all of {list(self.names)}")
        genome = []
        for name, card, ch in zip(self.names, self.cardinalities, self.choices):
            value = values[name]
            # A label wins over an index: for choices (16, 32, 64), 16 means the label 16.
            if ch is not None and value in ch:
                genome.append(ch.index(value))
            elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                genome.append(int(value))
            else:
                allowed = list(ch) if ch is not None else f"0..{card - 1}"
                raise ValueError(f"gene {name!r} = {value!r} is not allowed; allowed {allowed}")
        return self.validate(genome)

    def index(self, genome: Any) -> int:
        """The genome's mixed-radix rank in ``0 .. size - 1`` (first gene most significant)."""
        arr = self.validate(genome)
        rank = 0
        for card, value in zip(self.cardinalities, arr):
            rank = rank * card + int(value)
        return rank

    def from_index(self, rank: int) -> np.ndarray:
        """Inverse of :meth:`index`."""
        if not 0 <= int(rank) < self.size:
            raise ValueError(
                f"genome index {rank} is outside the space; allowed 0..{self.size - 1}"
            )
        rank = int(rank)
        genes = []
        for card in reversed(self.cardinalities):
            genes.append(rank % card)
            rank //= card
        return np.asarray(genes[::-1], dtype=np.int32)
