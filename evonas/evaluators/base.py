"""The ``Evaluator`` protocol, its ``Results``, and the base of the evaluators that wrap another.

Evaluators compose like optax's transformations under ``chain``: a base evaluator obtains a
fitness (training, a table, a one-shot supernet), and wrappers around it add what a search asks
of every architecture before or after (analytic costs and their constraints, measured latency,
zero-cost proxies, weight inheritance, successive halving). Each is one module and one row in
``evonas.evaluators.registry``; the experiment builds the chain from its config.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from evonas import checks
from evonas.objectives.constraints import Constraint


@struct.dataclass
class Results:
    """What an evaluator returns for a population of ``P`` genomes.

    Attributes:
        fitness: ``float32[P]``, the value a single-objective strategy optimises, in the
            evaluator's direction (``Evaluator.maximize``); NaN where the evaluation failed.
        objectives: ``{name: float32[P]}``, extra objectives for multi-objective search.
        metrics: ``{name: float32[P]}``, everything measured (accuracy, loss, table columns,
            latency, proxies); NaN where not measured.
        costs: ``{name: float32[P]}``, analytic costs (params, flops, ...), or empty where the
            evaluator does not compute them (the cost wrapper does).
        failed: ``bool[P]``, True where the individual could not be evaluated (or broke a
            constraint).
        fidelity: ``int[P]``, training steps each individual's own weights had (fewer than the
            full budget under successive halving or weight inheritance, 0 for one-shot
            estimates), or None where the notion does not apply (a table).
        params: each individual's trained parameters in the max-bounds layout (leaves
            ``[P, ...]``, NaN where training left a value untouched) when they were asked
            for, else None. Host side only.
        reasons: why each failed individual failed (``"loss became nan at step 37"``,
            ``"constraint params <= 1000 violated (params=2048)"``), None elsewhere; None when
            the evaluator gives no reasons.
        estimate: how each fitness was obtained, one word per individual (``"trained"``,
            ``"inherited"``, ``"oneshot"``, ``"table"``), None for an individual a wrapper kept
            from being evaluated (it broke a constraint checked before); the whole tuple None:
            the evaluator's ``estimate`` for everyone.
        seconds: wall seconds the evaluation itself took (None: not measured), which a run
            shares out over the individuals it evaluated.
        report: the evaluator's account of the call for logs and benchmarks (the trainer's
            plan, compiles and seconds), or None.
    """

    fitness: jax.Array
    objectives: dict[str, jax.Array]
    metrics: dict[str, jax.Array]
    costs: dict[str, jax.Array]
    failed: jax.Array
    fidelity: jax.Array | None = None
    params: Any = None
    reasons: tuple[str | None, ...] | None = struct.field(pytree_node=False, default=None)
    estimate: tuple[str | None, ...] | None = struct.field(pytree_node=False, default=None)
    seconds: float | None = struct.field(pytree_node=False, default=None)
    report: Any = struct.field(pytree_node=False, default=None)

    def __len__(self) -> int:
        return int(np.shape(self.failed)[0])

    def reason(self, i: int) -> str | None:
        """Why individual ``i`` failed (None: it did not, or no reason was given)."""
        return None if self.reasons is None else self.reasons[i]


@runtime_checkable
class Evaluator(Protocol):
    """Scores a population of genomes: ``evaluate(key, genomes) -> Results``.

    An evaluator is either pure and jit-able (a table lookup: ``TabularEvaluator``, which
    whole searches run inside one compiled program) or host side (training:
    ``TrainingEvaluator`` compiles and runs programs of its own). The experiment runner only
    calls ``evaluate`` from the host, once per generation, on the genomes it has not seen.

    Attributes:
        maximize: whether higher ``Results.fitness`` is better.
        protocol: (optional) how the fitness was obtained, in words, for reports and the
            history (``"training"``, ``"oracle tabular"``); default the class name.
        estimate: (optional) how each fitness is estimated, one word the history records per
            row (``"trained"``, ``"inherited"``, ``"oneshot"``, ``"table"``); default
            ``protocol``.
        encoding: (optional) the encoding whose genomes it scores.
        uses_parents: (optional) True when ``evaluate`` takes the keyword ``parents`` (each
            genome's parents, see :meth:`evaluate`); the runner passes it only then.
    """

    maximize: bool

    def evaluate(self, key: jax.Array, genomes: jax.Array) -> Results:
        """Scores ``genomes``.

        Args:
            key: a ``jax.random`` key for everything random in the evaluation (initialisation,
                batch order, noise); the same key and genomes give the same results.
            genomes: ``int32[P, G]``.
            parents: (keyword, only for an evaluator with ``uses_parents``) each genome's
                parents as the history keys them (``evonas.store.genome_key``), the first parent
                first; an empty list where a genome has none.

        Returns:
            :class:`Results` with a leading axis ``P`` on every array; a failed individual has
            ``failed`` set and NaN fitness, and must not affect the others' results.
        """
        ...


def fitness_metric(owner: str, fitness: str, config: Any, exclude: tuple[str, ...] = ()) -> str:
    """``fitness``, checked against what an evaluator that trains (or scores) measures: the
    trained metrics, and the test metrics when ``config.evaluate_test``, but ``exclude``.

    Raises:
        ValueError: another name, listing the allowed ones.
    """
    from evonas.objectives import metrics as table

    allowed = [m for m in table.TRAINED_METRICS if m not in exclude]
    if config.evaluate_test:
        allowed += list(table.TEST_METRICS)
    return checks.choice(f"{owner}.fitness", fitness, allowed)


def describe_estimate(evaluator: Any) -> str:
    """How ``evaluator`` estimates fitness, in one word, for the history's ``estimate``."""
    return str(getattr(evaluator, "estimate", describe_protocol(evaluator)))


def describe_protocol(evaluator: Any) -> str:
    """The evaluation protocol in words, for reports (``oracle tabular``, ``training``, ...)."""
    return getattr(evaluator, "protocol", type(evaluator).__name__)


def uses_parents(evaluator: Any) -> bool:
    """Whether ``evaluator.evaluate`` takes the ``parents`` keyword."""
    return bool(getattr(evaluator, "uses_parents", False))


# -- composing results -----------------------------------------------------------------------


def _host(values: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in values.items()}


def merge(size: int, parts: list[tuple[np.ndarray, Results]], estimate: str) -> Results:
    """One population's results from the results of parts of it: ``(positions, results)``
    each. A position no part covers was not evaluated: it is failed, with NaN values, no reason
    (yet) and no estimate (None); an estimate a part does not give is ``estimate``. Seconds
    add up."""
    parts = [(np.asarray(index, np.int64), part) for index, part in parts]

    def spread(get: Any, fill: Any) -> np.ndarray | None:
        out = None
        for index, part in parts:
            value = get(part)
            if value is None:
                return None
            value = np.asarray(value)
            if out is None:
                out = np.full((size, *value.shape[1:]), fill, value.dtype)
            out[index] = value
        return out

    def field(name: str) -> dict[str, np.ndarray]:
        keys = dict.fromkeys(k for _, part in parts for k in getattr(part, name))
        return {k: spread(lambda p, k=k: getattr(p, name).get(k, np.full(len(p), np.nan)),
                          np.nan) for k in keys}

    reasons: list[str | None] = [None] * size
    estimates: list[str | None] = [None] * size
    for index, part in parts:
        for j, i in enumerate(index):
            reasons[i] = part.reason(j)
            estimates[i] = part.estimate[j] if part.estimate is not None else estimate
    def leaves_at(*leaves: Any) -> np.ndarray:
        out = np.full((size, *np.shape(leaves[0])[1:]), np.nan, np.asarray(leaves[0]).dtype)
        for (index, _), leaf in zip(parts, leaves):
            out[index] = leaf
        return out

    params = None
    if parts and all(part.params is not None for _, part in parts):
        params = jax.tree.map(leaves_at, *[part.params for _, part in parts])
    nan = np.full(size, np.nan, np.float32)
    failed = np.ones(size, bool)
    for index, part in parts:
        failed[index] = np.asarray(part.failed)
    seconds = [part.seconds for _, part in parts if part.seconds is not None]
    reports = [part.report for _, part in parts]
    return Results(
        fitness=nan if not parts else spread(lambda p: p.fitness, np.nan),
        objectives=field("objectives"), metrics=field("metrics"), costs=field("costs"),
        failed=failed,
        fidelity=None if not parts else spread(lambda p: p.fidelity, 0),
        params=params, reasons=tuple(reasons), estimate=tuple(estimates),
        seconds=sum(seconds) if seconds else None,
        report=reports[0] if len(reports) == 1 else (tuple(reports) or None),
    )


def violations(constraints: Sequence[Constraint], values: dict[str, np.ndarray], size: int
               ) -> list[str | None]:
    """Per individual, ``"constraint params <= 1000 violated (params=2048)"`` for the first
    constraint it breaks among those whose metric ``values`` holds, else None."""
    out: list[str | None] = [None] * size
    for i in range(size):
        for c in constraints:
            if c.metric in values:
                value = float(values[c.metric][i])
                if not c.holds(value):
                    out[i] = (f"constraint {c.metric} {c.operator} {c.bound:g} violated "
                              f"({c.metric}={value:g})")
                    break
    return out


# -- wrappers --------------------------------------------------------------------------------


class Wrapper:
    """An evaluator around another (``inner``): what it does not override is the inner's.

    ``maximize``, ``encoding``, ``protocol`` and ``estimate`` are the inner evaluator's;
    ``attach`` (a run directory's place for what an evaluator keeps) reaches every evaluator of
    the chain. A wrapper that screens genomes before the inner evaluator sees them derives from
    :class:`Screen` instead.
    """

    def __init__(self, inner: Any):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def uses_parents(self) -> bool:
        return uses_parents(self.inner)

    def attach(self, root: Any, key: jax.Array) -> None:
        """Gives the chain a run directory ``root`` (an ``evonas.store.RunPaths``) and the
        experiment's seed key, for evaluators that keep state there."""
        attach = getattr(self.inner, "attach", None)
        if attach is not None:
            attach(root, key)

    def inner_evaluate(self, key: jax.Array, genomes: np.ndarray,
                       parents: list[list[str]] | None) -> Results:
        """The inner evaluator's results, with the parents when it takes them."""
        if uses_parents(self.inner):
            return self.inner.evaluate(key, genomes, parents=parents or [[] for _ in genomes])
        return self.inner.evaluate(key, genomes)

    def evaluate(self, key: jax.Array, genomes: jax.Array,
                 parents: list[list[str]] | None = None) -> Results:
        return self.inner_evaluate(key, np.asarray(genomes, np.int32), parents)


class Screen(Wrapper):
    """A wrapper that measures something of every genome before the inner evaluator runs and
    evaluates only those that meet its ``constraints`` (the rest fail, with the broken bound
    as the reason, and are never trained).

    A subclass implements :meth:`measure`, and says which metrics it measures
    (``measures``); its values join ``Results.metrics`` (``into="costs"``: ``Results.costs``).
    """

    measures: tuple[str, ...] = ()
    into = "metrics"

    def __init__(self, inner: Any, constraints: Sequence[Constraint] = ()):
        super().__init__(inner)
        self.constraints = tuple(constraints)

    def measure(self, key: jax.Array, genomes: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: float64[P]}`` of ``genomes`` (``int32[P, G]``)."""
        raise NotImplementedError

    def evaluate(self, key: jax.Array, genomes: jax.Array,
                 parents: list[list[str]] | None = None) -> Results:
        genomes = np.asarray(genomes, np.int32)
        values = {k: np.asarray(v, np.float64) for k, v in self.measure(key, genomes).items()}
        broken = violations(self.constraints, values, len(genomes))
        ok = np.asarray([i for i, r in enumerate(broken) if r is None], np.int64)
        inner = (self.inner_evaluate(key, genomes[ok], None if parents is None
                                     else [parents[i] for i in ok]) if len(ok) else None)
        results = merge(len(genomes), [] if inner is None else [(ok, inner)],
                        describe_estimate(self))
        reasons = [broken[i] or results.reason(i) for i in range(len(genomes))]
        # This wrapper's measurements first: a row lists what was measured in the order it was.
        merged = {k: v.astype(np.float32) for k, v in values.items()}
        merged.update({k: v for k, v in getattr(results, self.into).items() if k not in merged})
        return results.replace(**{self.into: merged}, reasons=tuple(reasons))


def as_host(results: Results) -> Results:
    """``results`` with every array on the host (numpy), each mapping in its order (a pytree
    map would sort their keys, and a row lists its metrics in the order they were measured)."""
    host = {name: {k: np.asarray(v) for k, v in getattr(results, name).items()}
            for name in ("objectives", "metrics", "costs")}
    return results.replace(
        fitness=np.asarray(results.fitness), failed=np.asarray(results.failed),
        fidelity=None if results.fidelity is None else np.asarray(results.fidelity), **host)


def nan_results(size: int) -> Results:
    """Results of ``size`` individuals none of which was evaluated."""
    nan = jnp.full(size, jnp.nan, jnp.float32)
    return Results(fitness=nan, objectives={}, metrics={}, costs={},
                   failed=jnp.ones(size, bool))
