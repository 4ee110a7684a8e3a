"""``Table``: any tabular benchmark, as columns of measured values indexed inside jit.

A tabular benchmark measured every architecture of a space once (trained it, timed it on some
devices) so that a search can look an architecture up instead of training it: thousands of
searches then run in seconds, and methods can be compared on equal terms. A :class:`Table` is
an encoding plus such columns:

* ``fitness``: the column a search optimises (a validation accuracy; NAS-Bench-201's shared table
  only has the final test accuracy, so there the fitness *is* the test accuracy: an "oracle"
  protocol);
* ``report``: columns that are reported but never shown to a strategy (a test accuracy when the
  fitness is a validation one);
* ``costs``: columns a search may minimise or bound (latency and energy on some device).

Rows are indexed by a jit-able function of the genome: by default the genome's mixed-radix rank
(:meth:`~evonas.genomes.GenomeSpace.rank`), so a table of a whole space holds one value per rank,
``0 .. space.size - 1``; a table in another order (or of part of a space) gives ``index``, a
function ``genomes int32[..., G] -> rows int32[...]`` with ``-1`` for an architecture the table
does not hold. :class:`~evonas.evaluators.TabularEvaluator` turns a table into an evaluator, so
everything that works on NAS-Bench-201 works on any table.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.genomes.space import GenomeSpace
from evonas.objectives import metrics


def _identifier(what: str, name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{what} must be a name such as 'val_acc' (letters, digits, '_'); "
                         f"got {name!r}")
    return name


@dataclasses.dataclass(frozen=True, eq=False)
class Table:
    """A tabular benchmark over the space of ``encoding`` (see the module docstring).

    Args:
        name: the benchmark's name (``"nb201"``), for messages and reports.
        encoding: the search-only (or trainable) encoding whose genomes index the table.
        columns: ``{name: float[N]}``, one value per row; NaN where nothing was measured.
        fitness: the column a search optimises.
        maximize: whether higher ``fitness`` is better (default: from the metric table,
            :func:`evonas.objectives.maximize`, else True).
        report: report-only columns (never told to a strategy, never an objective).
        costs: columns a search may use as objectives or constraints; always minimised.
        truth: the column a benchmark's regret is measured on (what a search's trace reports
            as ``true``); default: the first ``report`` column, else ``fitness``.
        index: a jit-able ``genomes int32[..., G] -> int32[...]`` row lookup (``-1``: not in the
            table); default ``encoding.space.rank`` (then ``N`` must be ``space.size``).
        genomes: ``int32[N, G]``, the genome of every row; needed with a custom ``index`` to
            compute true fronts over the whole table (derived from the ranks otherwise).
        parse: an optional ``text -> genome | None`` for the table's own notation of an
            architecture (NAS-Bench-201's benchmark index), tried by ``evonas describe``.
        protocol: how to report a search on it (``"tabular"``; ``"oracle tabular"`` when the
            fitness is the test accuracy).

    Raises:
        ValueError: a column of the wrong shape or length (naming both numbers), an unknown or
            repeated column name, or a fitness / truth that is not a column.
    """

    name: str
    encoding: Any
    columns: Mapping[str, Any]
    fitness: str
    maximize: bool | None = None
    report: Sequence[str] = ()
    costs: Sequence[str] = ()
    truth: str | None = None
    index: Callable[[jax.Array], jax.Array] | None = None
    genomes: Any = None
    parse: Callable[[str], Any] | None = None
    protocol: str = "tabular"

    def __post_init__(self):
        owner = f"table {self.name!r}"
        space = getattr(self.encoding, "space", None)
        if not isinstance(space, GenomeSpace):
            raise ValueError(f"{owner}: encoding must be an evonas encoding with a GenomeSpace "
                             f"`space`; got {type(self.encoding).__name__}")
        if not isinstance(self.columns, Mapping) or not self.columns:
            raise ValueError(f"{owner}: columns must be a non-empty mapping of name -> one "
                             f"value per architecture; got {type(self.columns).__name__}")
        if self.index is None:
            space._check_rankable()
            rows = space.size
            where = (f"the space of encoding {getattr(self.encoding, 'name', '?')!r} has "
                     f"{rows} architectures (a table in rank order holds one value per genome "
                     "rank; pass index= to look rows up another way)")
        elif not callable(self.index):
            raise ValueError(f"{owner}: index must be a function genomes -> rows; got "
                             f"{self.index!r}")
        else:
            rows, where = None, None
        columns = {}
        for name, values in self.columns.items():
            _identifier(f"{owner}: a column name", name)
            array = np.asarray(values)
            if array.ndim != 1 or not np.issubdtype(array.dtype, np.number):
                raise ValueError(f"{owner}: column {name!r} has shape {array.shape} "
                                 f"({array.dtype}); a column is one number per architecture, "
                                 f"shape ({rows if rows is not None else 'N'},)")
            if rows is None:
                rows, where = len(array), f"column {next(iter(columns), name)!r} has {len(array)}"
            if len(array) != rows:
                raise ValueError(f"{owner}: column {name!r} has {len(array)} values but "
                                 f"{where}")
            columns[name] = array.astype(np.float32)
        object.__setattr__(self, "columns", columns)
        report, costs = tuple(self.report), tuple(self.costs)
        for role, names in (("fitness", (self.fitness,)), ("report", report), ("costs", costs)):
            for n in names:
                if n not in columns:
                    raise ValueError(f"{owner}: {role} names {n!r}, which is not a column; "
                                     f"columns: {sorted(columns)}")
        overlap = ({self.fitness} & set(report)) | (set(report) & set(costs)) | (
            {self.fitness} & set(costs))
        if overlap:
            raise ValueError(f"{owner}: column(s) {sorted(overlap)} have two roles; a column is "
                             "the fitness, report-only or a cost")
        truth = self.truth if self.truth is not None else (report[0] if report else self.fitness)
        if truth not in columns:
            raise ValueError(f"{owner}: truth names {truth!r}, which is not a column; columns: "
                             f"{sorted(columns)}")
        maximize = self.maximize
        if maximize is None:
            maximize = metrics.maximize(self.fitness)
            maximize = True if maximize is None else maximize
        elif not isinstance(maximize, bool):
            raise ValueError(f"{owner}: maximize must be True or False; got {maximize!r}")
        genomes = self.genomes
        if genomes is not None:
            genomes = np.asarray(genomes, np.int32)
            if genomes.shape != (rows, space.num_genes):
                raise ValueError(f"{owner}: genomes has shape {genomes.shape}; it must be "
                                 f"({rows}, {space.num_genes}), one genome per row")
        for field, value in (("report", report), ("costs", costs), ("truth", truth),
                             ("maximize", maximize), ("genomes", genomes)):
            object.__setattr__(self, field, value)
        object.__setattr__(self, "_device", {k: jnp.asarray(v) for k, v in columns.items()})

    # -- facts -------------------------------------------------------------------------------

    @property
    def space(self) -> GenomeSpace:
        return self.encoding.space

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    @property
    def searchable(self) -> tuple[str, ...]:
        """Columns a search may see: the fitness and the costs (never the report columns)."""
        return (self.fitness, *self.costs)

    def column(self, name: str) -> np.ndarray:
        """One column, ``float32[N]`` in row order (host side)."""
        if name not in self.columns:
            raise ValueError(f"table {self.name!r} has no column {name!r}; columns: "
                             f"{sorted(self.columns)}")
        return self.columns[name]

    def optimum(self, name: str | None = None) -> float:
        """The best value of a column over the table (default :attr:`truth`), in the fitness's
        direction for the fitness and truth columns, lowest for a cost."""
        name = self.truth if name is None else name
        values = self.column(name)
        better = self.maximize if name in (self.fitness, self.truth) else False
        return float(np.nanmax(values) if better else np.nanmin(values))

    def all_genomes(self) -> np.ndarray:
        """``int32[N, G]``: the genome of every row, in row order."""
        if self.genomes is not None:
            return self.genomes
        if self.index is not None:
            raise ValueError(f"table {self.name!r} has a custom index and no genomes=; pass "
                             "the genome of every row to compute over the whole table")
        return np.asarray(self.space.unrank(jnp.arange(len(self), dtype=jnp.int32)))

    # -- lookups (jit-able) ----------------------------------------------------------------------

    def rows(self, genomes: jax.Array) -> jax.Array:
        """The row of each genome, ``int32[...]``; ``-1`` outside the space or the table."""
        genomes = jnp.asarray(genomes, jnp.int32)
        inside = self.space.contains(genomes)
        clipped = self.space.clip(genomes)
        row = self.space.rank(clipped) if self.index is None else jnp.asarray(
            self.index(clipped), jnp.int32)
        return jnp.where(inside, row, -1)

    def lookup(self, genomes: jax.Array, name: str, rows: jax.Array | None = None) -> jax.Array:
        """Column ``name`` of each genome, ``float32[...]``; NaN where a genome has no row."""
        if name not in self._device:
            self.column(name)  # raises naming the columns
        rows = self.rows(genomes) if rows is None else rows
        values = self._device[name][jnp.maximum(rows, 0)]
        return jnp.where(rows >= 0, values, jnp.float32(math.nan))

    def __repr__(self) -> str:
        return (f"Table({self.name!r}, {len(self)} rows, fitness={self.fitness!r}, "
                f"report={list(self.report)}, costs={list(self.costs)})")
