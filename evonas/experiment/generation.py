"""One generation's evaluation: de-duplication against the history, constraints, evaluation, rows.

The de-duplication cache is the history itself (``History.lookup``): a genome evaluated in any
earlier generation, before or after a resume, is not evaluated again; its stored result is reused
and its row is recorded with ``cached=1``. Genomes are compared through the encoding's
``canonical`` hook when it has one, so an isomorphic genome counts as seen. Only the unique new
genomes of a generation are evaluated (trained, or looked up in a table), in one population. A
genome that violates a constraint on an analytic cost or on its measured latency is not
evaluated at all: it is recorded as failed (infeasible) with the broken bound.

Each row's objective values (``search.objectives``) come from its metrics and costs; an infeasible
or failed row has none (NaN), so every strategy ranks it below every feasible one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from evonas.evaluators import LatencyMeter, describe_estimate, describe_protocol
from evonas.experiment.components import cost_metrics
from evonas.experiment.config import ExperimentConfig
from evonas.genomes import canonical_genomes
from evonas.objectives import MEASURED_METRICS, Constraint, objective_matrix, row_value
from evonas.store import History, ParamStore, genome_key
from evonas.train.proxies import PROXIES, zero_cost_scores


class GenerationResult(NamedTuple):
    """The rows of a generation (history order), the fitness told to the strategy, counts."""

    rows: list[dict[str, Any]]
    fitness: np.ndarray  # float32[B], NaN where failed or infeasible
    objectives: np.ndarray  # float32[B, M], every objective; NaN rows where failed or infeasible
    trained: int
    cached: int
    failed: int
    train_seconds: float


def _violations(constraints: Sequence[Constraint], values: dict[str, float]) -> str | None:
    """``"constraint params <= 1000 violated (params=2048)"`` for the first broken one, or None."""
    for c in constraints:
        if c.metric in values and not c.holds(values[c.metric]):
            return (f"constraint {c.metric} {c.operator} {c.bound:g} violated "
                    f"({c.metric}={values[c.metric]:g})")
    return None


class GenerationEvaluator:
    """Evaluates the genomes a strategy asked for, one generation at a time.

    Args:
        config: the experiment (objective and constraints).
        encoding: the encoding.
        evaluator: any evaluator (``evaluate(key, genomes) -> Results``); a
            ``TrainingEvaluator``'s ``last_result`` gives failure reasons and seconds.
    """

    def __init__(self, config: ExperimentConfig, encoding: Any, evaluator: Any,
                 on_new: Any = None, weights: ParamStore | None = None):
        self.on_new = on_new  # called with (asked, new) before the new ones are evaluated
        # Weight inheritance: every trained architecture's parameters, by genome key.
        self.weights = weights
        self._param_shapes = None
        self.encoding = encoding
        self.evaluator = evaluator
        self.objectives = config.search.objective_directions
        self.cost_names = cost_metrics(encoding)
        constraints = config.search.parsed_constraints()
        self.proxies = tuple(config.search.proxies)
        screen = config.search.prefilter.proxy
        # How fitness is estimated, as the history records it ("naswot+trained": screened).
        self.estimate = (f"{screen}+" if screen else "") + describe_estimate(evaluator)
        # Checked before training: analytic costs, measured latency and zero-cost proxies.
        before = set(self.cost_names) | set(MEASURED_METRICS) | set(PROXIES)
        self.cost_constraints = [c for c in constraints if c.metric in before]
        self.metric_constraints = [c for c in constraints if c.metric not in before]
        wanted = {name for name, _ in self.objectives} | {c.metric for c in constraints}
        latency = config.search.latency
        self.latency = LatencyMeter(encoding, latency.batch_size, latency.repeats,
                                    latency.warmup) if "latency" in wanted else None
        self._costs = jax.jit(jax.vmap(encoding.cost))

    def evaluate(self, key: jax.Array, genomes: np.ndarray, parents: np.ndarray,
                 history: History) -> GenerationResult:
        """Evaluates ``genomes`` (``int32[B, G]``); ids continue ``history.count()``.

        Args:
            key: the generation's evaluation key (training initialisation and batches).
            genomes: what the strategy asked, in order.
            parents: ``int32[B, k]`` parent ids per genome (-1: none).
            history: the run's history, the de-duplication cache.
        """
        genomes = np.asarray(genomes, np.int32)
        keys = [genome_key(g) for g in canonical_genomes(self.encoding, genomes)]
        reused: dict[str, dict[str, Any]] = {}
        new: list[int] = []  # first occurrence of each genome never evaluated before
        queued: set[str] = set()
        for i, k in enumerate(keys):
            if k in reused or k in queued:
                continue
            hit = history.lookup(k)
            if hit is not None:
                reused[k] = hit
            else:
                new.append(i)
                queued.add(k)
        if self.on_new is not None:
            self.on_new(len(keys), len(new))
        fresh, seconds = (self._evaluate_new(key, genomes[new], parents[new],
                                             [keys[i] for i in new], history)
                          if new else ({}, 0.0))
        fresh = {keys[i]: row for i, row in zip(new, fresh)}
        start = history.count()
        rows, first = [], set()
        for i, k in enumerate(keys):
            trained = k in fresh and k not in first
            first.add(k)
            source = fresh[k] if k in fresh else reused[k]
            row = {f: source.get(f) for f in _RESULT_FIELDS}
            row.update(
                id=start + i, genome=genomes[i].tolist(), genome_key=k,
                parents=[int(p) for p in np.ravel(parents[i]) if p >= 0],
                cached=not trained,
                train_seconds=source.get("train_seconds") if trained else 0.0,
            )
            rows.append(row)
        fitness = np.asarray([np.nan if r["fitness"] is None or r["failed"] else r["fitness"]
                              for r in rows], np.float32)
        objectives = objective_matrix(rows, self.objectives).astype(np.float32)
        return GenerationResult(rows, fitness, objectives, len(new), len(rows) - len(new),
                                sum(bool(r["failed"]) for r in rows), seconds)

    def _starts(self, parents: np.ndarray, history: History) -> Any:
        """Weight inheritance: each genome's first parent's kept parameters (leaves
        ``[B, ...]``), NaN for a genome with no parent or none kept (it starts as usual)."""
        if self._param_shapes is None:
            self._param_shapes = self.evaluator.param_shapes()
        like = self._param_shapes
        start = jax.tree.map(lambda s: np.full((len(parents), *s.shape[1:]), np.nan, s.dtype),
                             like)
        for i, row in enumerate(np.asarray(parents).reshape(len(parents), -1)):
            ids = [int(p) for p in row if p >= 0]
            key = history.key_of(ids[0]) if ids else None
            kept = self.weights.load(key, like) if key is not None else None
            if kept is not None:
                for out, leaf in zip(jax.tree.leaves(start), jax.tree.leaves(kept)):
                    out[i] = leaf[0]
        return start

    def _evaluate_new(self, key: jax.Array, genomes: np.ndarray, parents: np.ndarray,
                      keys: list[str], history: History
                      ) -> tuple[list[dict[str, Any]], float]:
        """Result fields of never-seen genomes: infeasible ones fail untrained, the rest train."""
        costs = {k: np.asarray(v, np.float64) for k, v in
                 self._costs(jnp.asarray(genomes)).items()}
        rows = []
        for i, genome in enumerate(genomes):
            values = {m: float(costs[m][i]) for m in self.cost_names}
            reason = _violations(self.cost_constraints, values)
            if reason is None and self.latency is not None:  # timed only when it may train
                values["latency"] = self.latency(genome)
                reason = _violations(self.cost_constraints, values)
            extra = {k: v for k, v in values.items() if k not in ("params", "flops")}
            rows.append({
                "description": self.encoding.describe(genome), "metrics": extra,
                "params": values["params"], "flops": values["flops"],
                "executed_flops": (float(costs["executed_flops"][i])
                                   if "executed_flops" in costs else None),
                "failed": reason is not None, "reason": reason, "fitness": None,
                "train_seconds": 0.0, "fidelity": None, "estimate": None,
            })
        feasible = [i for i, r in enumerate(rows) if not r["failed"]]
        if feasible and self.proxies:
            # The networks scored are the ones training starts from: the same key and order.
            scores = zero_cost_scores(key, self.encoding, genomes[feasible],
                                      self.evaluator.dataset, self.proxies)
            for j, i in enumerate(feasible):
                rows[i]["metrics"].update({n: float(scores[n][j]) for n in self.proxies})
                reason = _violations(self.cost_constraints, rows[i]["metrics"])
                if reason is not None:
                    rows[i].update(failed=True, reason=reason)
            feasible = [i for i in feasible if not rows[i]["failed"]]
        if not feasible:
            return rows, 0.0
        start = time.perf_counter()
        if self.weights is None:
            results = self.evaluator.evaluate(key, genomes[feasible])
        else:
            results = self.evaluator.evaluate(key, genomes[feasible],
                                              start=self._starts(parents[feasible], history),
                                              keep_params=True)
        last = getattr(self.evaluator, "last_result", None)  # a TrainingEvaluator's details
        inherited = getattr(self.evaluator, "last_inherited", None)
        seconds = last.seconds if last is not None else time.perf_counter() - start
        share = seconds / len(feasible)  # wall time of the population, split evenly
        metrics = {k: np.asarray(v, np.float64) for k, v in results.metrics.items()}
        failed_all = np.asarray(results.failed)
        fidelity = (None if getattr(results, "fidelity", None) is None
                    else np.asarray(results.fidelity))
        for j, i in enumerate(feasible):
            row = rows[i]
            measured = {k: float(v[j]) for k, v in metrics.items()}
            failed = bool(failed_all[j])
            if failed:
                reason = last.reasons[j] if last is not None else (
                    f"no result from the {describe_protocol(self.evaluator)} evaluator (not in "
                    "the table, or no measurement)")
            else:
                reason = _violations(self.metric_constraints, measured)
            row.update(
                metrics={**row["metrics"],
                         **{k: v for k, v in measured.items() if math.isfinite(v)}},
                val_acc=measured.get("val_acc"), val_loss=measured.get("val_loss"),
                failed=failed or reason is not None, reason=reason,
                train_seconds=share,
                estimate=("inherited" if inherited is not None and inherited[j]
                          else self.estimate),
                fidelity=None if fidelity is None else int(fidelity[j]),
            )
            value = row_value(row, self.objectives[0][0])
            # An objective the evaluation could not give (NaN) fails the row: it can't rank.
            if not (failed or reason is not None) and not all(
                    math.isfinite(row_value(row, name)) for name, _ in self.objectives):
                row.update(failed=True, reason="an objective is not finite: " + ", ".join(
                    f"{name}={row_value(row, name)}" for name, _ in self.objectives))
            row["fitness"] = None if row["failed"] else value
            if self.weights is not None and not failed and last.params is not None:
                # Written before the generation commits: a resumed run finds every parent.
                self.weights.save(keys[i], jax.tree.map(lambda a, j=j: a[j:j + 1], last.params))
        return rows, seconds


# Fields of a result row that a cached copy reuses unchanged.
_RESULT_FIELDS = ("description", "fitness", "metrics", "val_acc", "val_loss", "params", "flops",
                  "executed_flops", "failed", "reason", "fidelity", "estimate")
