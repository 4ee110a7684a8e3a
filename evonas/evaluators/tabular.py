"""Fitness looked up in any tabular benchmark (a :class:`~evonas.benchmarks.Table`), inside jit.

The table's columns are device arrays indexed by each genome's row, so a whole search over it can
be one compiled ``lax.scan``, and many searches one ``vmap`` of it
(``evonas.strategies.run_searches(strategy, evaluator.search_fn(), ...)``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from evonas.benchmarks.table import Table
from evonas.evaluators.base import Results
from evonas.genomes.encoding import cost_names
from evonas.objectives.constraints import parse_constraint

# What evonas.strategies.run_searches takes: (key, genomes) -> (seen, true).
EvaluateFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


class TabularEvaluator:
    """Looks genomes up in a :class:`~evonas.benchmarks.Table`.

    The fitness is the table's ``fitness`` column (NAS-Bench-201: the final test accuracy,
    an *oracle tabular* protocol, ``protocol`` says which); report-only columns are never part
    of the fitness, the objectives or a constraint.

    Args:
        table: the benchmark, e.g. ``evonas.get_benchmark("nb201", dataset="cifar100")``.
        objectives: extra objectives, all minimised: the table's cost columns
            (``edgegpu_latency``, ...) or the encoding's analytic costs (``params``, ``flops``).
        noise: standard deviation of Gaussian noise added to the fitness (not to the
            ``metrics``); 0 for the exact table.
        constraints: hard limits such as ``"edgegpu_latency <= 5 ms"`` or ``"params <=
            500000"`` on the fitness, a cost column or an analytic cost; an architecture outside
            them is infeasible: ``failed``, with NaN fitness and objectives, so every strategy
            ranks it below every feasible one and it is never the best.

    Raises:
        ValueError: an objective or constraint on a column the table does not offer (naming the
            allowed ones), or a negative noise.
    """

    def __init__(self, table: Table, objectives: Sequence[str] = (), noise: float = 0.0,
                 constraints: Sequence[str] = ()):
        if not isinstance(table, Table):
            raise ValueError(f"TabularEvaluator needs an evonas.benchmarks.Table (e.g. "
                             f"evonas.get_benchmark('nb201')); got {type(table).__name__}")
        self.table = table
        self.encoding = table.encoding
        self.maximize = table.maximize
        self.protocol = table.protocol
        self.estimate = "table"
        self.cost_names = cost_names(self.encoding)
        if isinstance(objectives, str):
            objectives = (objectives,)
        allowed = list(dict.fromkeys([*table.costs, *self.cost_names]))
        for name in objectives:
            if name not in allowed:
                raise ValueError(f"TabularEvaluator: unknown objective {name!r}; allowed (the "
                                 f"table's costs and the encoding's): {allowed}")
        try:
            noise = float(noise)
        except (TypeError, ValueError):
            raise ValueError(f"TabularEvaluator: noise must be a number >= 0; got {noise!r}"
                             ) from None
        if not noise >= 0.0 or math.isinf(noise):
            raise ValueError(f"TabularEvaluator: noise must be >= 0 (finite); got {noise!r}")
        if isinstance(constraints, str):
            constraints = (constraints,)
        self.constraints = tuple(parse_constraint(c) for c in constraints)
        bounded = list(dict.fromkeys([*table.searchable, *self.cost_names]))
        for c in self.constraints:
            if c.metric not in bounded:
                hidden = " (a report-only column: a search never sees it)" if (
                    c.metric in table.report) else ""
                raise ValueError(f"TabularEvaluator: constraint on unknown metric "
                                 f"{c.metric!r}{hidden}; allowed: {bounded}")
        self.objectives = tuple(objectives)
        self.noise = noise
        self._evaluate = jax.jit(self._lookup)

    @property
    def space(self):
        return self.encoding.space

    @property
    def objectives_maximize(self) -> dict[str, bool]:
        """The direction of every objective: costs are minimised."""
        return {name: False for name in self.objectives}

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Looks up ``genomes`` ``int32[P, G]``; genomes outside the space or the table fail.

        Jit- and vmap-able (no host callbacks: the table is a constant of the program), and
        jitted once when called from the host. ``metrics`` holds the exact fitness column and
        every cost column (NaN outside the table), ``costs`` the analytic costs.
        """
        return self._evaluate(key, genomes)

    def _lookup(self, key: jax.Array, genomes: jax.Array) -> Results:
        table = self.table
        genomes = jnp.asarray(genomes, jnp.int32)
        rows = table.rows(genomes)
        valid = rows >= 0
        cost = jax.vmap(self.encoding.cost)(genomes)  # cost is per genome
        columns = {n: table.lookup(genomes, n, rows) for n in table.searchable}
        values = {**{k: cost[k] for k in self.cost_names}, **columns}
        feasible = valid
        for c in self.constraints:  # NaN (no measurement) never meets a bound
            feasible = feasible & c.holds_array(values[c.metric])
        nan = jnp.float32(jnp.nan)
        fitness = jnp.where(feasible, columns[table.fitness], nan)
        if self.noise > 0.0:
            fitness = fitness + self.noise * jax.random.normal(key, fitness.shape, jnp.float32)
        objectives = {n: jnp.where(feasible, values[n], nan) for n in self.objectives}
        costs = {k: jnp.where(valid, cost[k], nan) for k in self.cost_names}
        return Results(fitness=fitness, objectives=objectives, metrics=columns, costs=costs,
                       failed=~feasible)

    def lookup(self, genomes: jax.Array, column: str) -> jax.Array:
        """Any column of the table (report-only ones included: for final reports) for
        ``genomes``, NaN where a genome has no row; jit-able."""
        return self.table.lookup(genomes, column)

    def search_fn(self, num_objectives: int = 1) -> EvaluateFn:
        """The ``(key, genomes) -> (seen, true)`` of ``evonas.strategies.run_searches``.

        ``seen`` is the fitness (``num_objectives=1``) or ``[fitness, *objectives]`` stacked to
        ``[B, M]`` for a multi-objective strategy. ``true`` is the table's ``truth`` column
        (NaN only outside the table), or, when the evaluator has objectives, ``[truth,
        *objectives]`` stacked with infeasible rows NaN: what fronts are computed from.

        Raises:
            ValueError: ``num_objectives`` other than 1 or ``1 + len(objectives)``.
        """
        m = 1 + len(self.objectives)
        if num_objectives not in (1, m):
            raise ValueError(f"TabularEvaluator.search_fn: the strategy takes {num_objectives} "
                             f"objectives but this evaluator has {m} (the fitness and "
                             f"{list(self.objectives)})")
        truth = self.table.truth

        def evaluate(key: jax.Array, genomes: jax.Array) -> tuple[jax.Array, jax.Array]:
            results = self.evaluate(key, genomes)
            true = self.table.lookup(genomes, truth)
            if not self.objectives:
                return results.fitness, true
            extra = [results.objectives[n] for n in self.objectives]
            true = jnp.where(results.failed[:, None], jnp.nan, jnp.stack([true, *extra], -1))
            if num_objectives == 1:
                return results.fitness, true
            return jnp.stack([results.fitness, *extra], axis=-1), true

        return evaluate

    def __repr__(self) -> str:
        return (f"TabularEvaluator({self.table.name!r}, objectives={self.objectives!r}, "
                f"noise={self.noise!r}, constraints={[str(c) for c in self.constraints]!r})")

