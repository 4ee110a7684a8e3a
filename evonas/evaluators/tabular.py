"""Fitness looked up in the NAS-Bench-201 table, inside jit.

The table (Dong & Yang, ICLR 2020; HW-NAS-Bench, Li et al., ICLR 2021) is a device array indexed
by each genome's benchmark index, so a whole search over it can be one compiled ``lax.scan``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from evonas.benchmarks.nb201 import DATASETS, encoding_for, load_table, metric_names
from evonas.constraints import Constraint, parse_constraint
from evonas.evaluators.base import Results


def _holds(c: Constraint, value: jax.Array) -> jax.Array:
    ops = {"<=": jnp.less_equal, "<": jnp.less, ">=": jnp.greater_equal, ">": jnp.greater}
    return ops[c.operator](value, c.bound)


class TabularEvaluator:
    """Looks NAS-Bench-201 genomes up in the vendored table.

    Protocol: **oracle tabular**. The table holds each architecture's final test accuracy after
    the benchmark's 200-epoch schedule; it has no validation accuracies and no 12-epoch results,
    so the NAS-Bench-201 paper's search protocol (12-epoch validation accuracy, simulated
    training time) cannot be replayed, and fitness is the test accuracy itself. Report searches
    that use it as such.

    Args:
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet16"`` (ImageNet16-120).
        objectives: extra objectives, all to be minimised, named ``DEVICE_latency``
            (milliseconds; edgegpu, raspi4, pixel3, eyeriss, fpga, edgetpu) or ``DEVICE_energy``
            (millijoules; edgegpu, eyeriss, fpga), measured on ``dataset``'s network. edgetpu
            latency is NaN where HW-NAS-Bench has no measurement.
        noise: standard deviation, in accuracy points, of Gaussian noise added to the fitness
            (not to the ``test_acc`` metric); 0 for the exact table.
        constraints: hard limits such as ``"edgegpu_latency <= 5"`` (ms) or ``"params <=
            500000"`` on any table metric or analytic cost; an architecture outside them is
            infeasible: ``failed``, with NaN fitness and objectives, so every strategy ranks it
            below every feasible one and it is never the best.
    """

    maximize = True
    protocol = "oracle tabular"

    def __init__(
        self, dataset: str = "cifar10", objectives: Sequence[str] = (), noise: float = 0.0,
        constraints: Sequence[str] = (),
    ):
        if dataset not in DATASETS:
            raise ValueError(
                f"TabularEvaluator: unknown dataset {dataset!r}; allowed: {list(DATASETS)}"
            )
        if isinstance(objectives, str):
            objectives = (objectives,)
        allowed = [m for m in metric_names() if m != "test_acc"]
        for name in objectives:
            if name not in allowed:
                raise ValueError(
                    f"TabularEvaluator: unknown objective {name!r}; allowed: {allowed}"
                )
        try:
            noise = float(noise)
        except (TypeError, ValueError):
            raise ValueError(
                f"TabularEvaluator: noise must be a number >= 0; got {noise!r}"
            ) from None
        if not noise >= 0.0:
            raise ValueError(f"TabularEvaluator: noise must be >= 0 accuracy points; got {noise!r}")
        if isinstance(constraints, str):
            constraints = (constraints,)
        self.constraints = tuple(parse_constraint(c) for c in constraints)
        for c in self.constraints:
            if c.metric not in metric_names() + ["params", "flops"]:
                raise ValueError(
                    f"TabularEvaluator: constraint on unknown metric {c.metric!r}; allowed: "
                    f"{metric_names() + ['params', 'flops']}"
                )
        self.dataset = dataset
        self.objectives = tuple(objectives)
        self.noise = noise
        self.encoding = encoding_for(dataset)
        table = load_table()
        self._table = table
        self._test_acc = jnp.asarray(table.column(dataset, "test_acc"))
        names = set(self.objectives) | {c.metric for c in self.constraints}
        self._columns = {n: jnp.asarray(table.column(dataset, n)) for n in names
                         if n in metric_names()}

    @property
    def objectives_maximize(self) -> dict[str, bool]:
        """The direction of every objective: latencies and energies are minimised."""
        return {name: False for name in self.objectives}

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Looks up ``genomes`` ``int32[P, 6]``; genomes outside the space are failed (NaN).

        Jit- and vmap-able: no host callbacks, the table is a constant of the program.
        """
        genomes = jnp.asarray(genomes, jnp.int32)
        valid = self.encoding.space.contains(genomes)
        index = self._table.indices(self.encoding.space.clip(genomes))
        cost = self.encoding.cost(genomes)
        values = {"params": cost["params"], "flops": cost["flops"],
                  **{n: col[index] for n, col in self._columns.items()}}
        feasible = valid
        for c in self.constraints:  # NaN (no measurement) never meets a bound
            feasible = feasible & _holds(c, values[c.metric])
        nan = jnp.float32(jnp.nan)
        test_acc = jnp.where(valid, self._test_acc[index], nan)
        fitness = jnp.where(feasible, test_acc, nan)
        if self.noise > 0.0:
            fitness = fitness + self.noise * jax.random.normal(key, fitness.shape, jnp.float32)
        objectives = {n: jnp.where(feasible, values[n], nan) for n in self.objectives}
        costs = {k: jnp.where(valid, cost[k], nan) for k in ("params", "flops")}
        return Results(
            fitness=fitness,
            objectives=objectives,
            metrics={"test_acc": test_acc},
            costs=costs,
            failed=~feasible,
        )

    def _constraint_texts(self) -> list[str]:
        return [f"{c.metric} {c.operator} {c.bound:g}" for c in self.constraints]

    def __repr__(self) -> str:
        return (
            f"TabularEvaluator(dataset={self.dataset!r}, objectives={self.objectives!r}, "
            f"noise={self.noise!r}, constraints={self._constraint_texts()!r})"
        )
