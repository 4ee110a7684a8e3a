"""One generation's evaluation: de-duplication against the history, evaluation, rows.

The de-duplication cache is the history itself (``History.lookup``): a genome evaluated in any
earlier generation, before or after a resume, is not evaluated again; its stored result is reused
and its row is recorded with ``cached=1``. Genomes are compared through the encoding's
``canonical`` hook when it has one, so an isomorphic genome counts as seen. Only the unique new
genomes of a generation go to the evaluator, in one population; how their fitness is obtained
(constraints checked before training, latency, proxies, training, a table) is the evaluator's
business (``evonas.experiment.evaluation``). Here each result becomes a typed history row
(:class:`evonas.store.row.Row`).

Each row's objective values (``search.objectives``) come from its metrics and costs; a failed row,
or one whose objectives are not all finite, has none (NaN), so every strategy ranks it below
every feasible one.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

import jax
import numpy as np

from evonas.evaluators import Results, describe_estimate, describe_protocol, uses_parents
from evonas.evaluators.base import as_host
from evonas.experiment.config import ExperimentConfig
from evonas.genomes import canonical_genomes, cost_names
from evonas.objectives import objective_matrix, row_value
from evonas.store import History, genome_key
from evonas.store.row import Row

# Fields of a result row that a cached copy reuses unchanged.
_RESULT_FIELDS = ("description", "fitness", "metrics", "val_acc", "val_loss", "params", "flops",
                  "executed_flops", "failed", "reason", "fidelity", "estimate")


class GenerationResult(NamedTuple):
    """The rows of a generation (history order), the fitness told to the strategy, counts."""

    rows: list[dict[str, Any]]
    fitness: np.ndarray  # float32[B], NaN where failed or infeasible
    objectives: np.ndarray  # float32[B, M], every objective; NaN rows where failed or infeasible
    trained: int
    cached: int
    failed: int
    train_seconds: float


class GenerationEvaluator:
    """Evaluates the genomes a strategy asked for, one generation at a time.

    Args:
        config: the experiment (its objectives).
        encoding: the encoding.
        evaluator: the experiment's evaluator (``evaluate(key, genomes) -> Results``).
        estimate_prefix: recorded before every row's estimate (``"naswot+"``: the asked
            genomes were screened by a proxy first).
    """

    def __init__(self, config: ExperimentConfig, encoding: Any, evaluator: Any,
                 on_new: Any = None, estimate_prefix: str = ""):
        self.on_new = on_new  # called with (asked, new) before the new ones are evaluated
        self.encoding = encoding
        self.evaluator = evaluator
        self.objectives = config.search.objective_directions
        self.cost_names = cost_names(encoding)
        self.estimate_prefix = estimate_prefix

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
        for i, k in enumerate(keys):
            if k in reused or any(keys[j] == k for j in new):
                continue
            hit = history.lookup(k)
            if hit is not None:
                reused[k] = hit
            else:
                new.append(i)
        if self.on_new is not None:
            self.on_new(len(keys), len(new))
        fresh, seconds = (self._evaluate_new(key, genomes[new], parents[new], history)
                          if new else ([], 0.0))
        fresh_by_key = {keys[i]: row for i, row in zip(new, fresh)}
        start = history.count()
        rows, first = [], set()
        for i, k in enumerate(keys):
            trained = k in fresh_by_key and k not in first
            first.add(k)
            source = fresh_by_key[k] if k in fresh_by_key else reused[k]
            rows.append(Row(
                **{f: source.get(f) for f in _RESULT_FIELDS},
                id=start + i, genome=genomes[i].tolist(), genome_key=k,
                parents=[int(p) for p in np.ravel(parents[i]) if p >= 0],
                cached=not trained,
                train_seconds=source.get("train_seconds") if trained else 0.0,
            ).as_dict())
        fitness = np.asarray([np.nan if r["fitness"] is None or r["failed"] else r["fitness"]
                              for r in rows], np.float32)
        objectives = objective_matrix(rows, self.objectives).astype(np.float32)
        return GenerationResult(rows, fitness, objectives, len(new), len(rows) - len(new),
                                sum(bool(r["failed"]) for r in rows), seconds)

    def _parent_keys(self, parents: np.ndarray, history: History) -> list[list[str]]:
        """Each genome's parents as the history keys them (the first parent first)."""
        out = []
        for row in np.asarray(parents).reshape(len(parents), -1):
            keys = [history.key_of(int(p)) for p in row if p >= 0]
            out.append([k for k in keys if k is not None])
        return out

    def _evaluate_new(self, key: jax.Array, genomes: np.ndarray, parents: np.ndarray,
                      history: History) -> tuple[list[dict[str, Any]], float]:
        """Result fields of never-seen genomes, and the seconds their evaluation took (the
        evaluator's own count, else the wall time), shared out over those it evaluated."""
        start = time.perf_counter()
        if uses_parents(self.evaluator):
            results = self.evaluator.evaluate(key, genomes,
                                              parents=self._parent_keys(parents, history))
        else:
            results = self.evaluator.evaluate(key, genomes)
        wall = time.perf_counter() - start
        results = as_host(results)
        seconds = results.seconds if results.seconds is not None else wall
        evaluated = [results.estimate is None or results.estimate[j] is not None
                     for j in range(len(genomes))]
        share = seconds / max(sum(evaluated), 1)
        rows = [self._fields(genome, results, j, share if evaluated[j] else None)
                for j, genome in enumerate(genomes)]
        return rows, seconds if any(evaluated) else 0.0

    def _fields(self, genome: np.ndarray, results: Results, j: int, share: float | None
                ) -> dict[str, Any]:
        """The result fields of the ``j``-th new genome (no id, genome or lineage yet);
        ``share`` is its part of the evaluation's seconds, None when it was not evaluated (a
        constraint checked before kept it out)."""
        costs = {k: float(v[j]) for k, v in results.costs.items()}
        measured = {k: float(v[j]) for k, v in results.metrics.items()}
        metrics = {k: costs[k] for k in self.cost_names if k not in ("params", "flops")
                   and k in costs}
        # NaN: not measured (failed, or kept out before); an infinite score is a measurement
        # (naswot's log det of a singular kernel), stored as null.
        metrics.update({k: v for k, v in measured.items() if not math.isnan(v)})
        failed = bool(results.failed[j])
        reason = results.reason(j)
        if failed and reason is None:
            reason = (f"no result from the {describe_protocol(self.evaluator)} evaluator (not "
                      "in the table, or no measurement)")
        estimate = None
        if share is not None:
            estimate = self.estimate_prefix + (results.estimate[j] if results.estimate
                                               is not None else describe_estimate(self.evaluator))
        row = {
            "description": self.encoding.describe(genome), "metrics": metrics,
            "params": costs.get("params"), "flops": costs.get("flops"),
            "executed_flops": costs.get("executed_flops"),
            "val_acc": measured.get("val_acc"), "val_loss": measured.get("val_loss"),
            "failed": failed, "reason": reason, "train_seconds": share or 0.0,
            "estimate": estimate,
            "fidelity": (None if results.fidelity is None or share is None
                         else int(results.fidelity[j])),
        }
        if not failed and not all(math.isfinite(row_value(row, name))
                                  for name, _ in self.objectives):
            # An objective the evaluation could not give (NaN) fails the row: it can't rank.
            row.update(failed=True, reason="an objective is not finite: " + ", ".join(
                f"{name}={row_value(row, name)}" for name, _ in self.objectives))
        row["fitness"] = None if row["failed"] else row_value(row, self.objectives[0][0])
        return row
