"""What every step of the final stage shares: the run, its chosen architectures and how they are
scored.

The top k are ranked by search fitness (validation), never by test accuracy. In a training run
each chosen architecture is rebuilt as a standalone module (``encoding.build``) and trained by the
standalone trainer (``evonas.train.train_module``) on the train and validation splits together;
the test split is touched only here. In a tabular run nothing is trained: the table's truth and
report columns are read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import streams
from evonas.experiment.components import build_model_parts, build_table
from evonas.experiment.config import ExperimentConfig
from evonas.store import RunPaths, atomic_write_text, export_model
from evonas.train import accuracy, predict_logits, train_for_seconds, train_module


class Retrainer:
    """Scores a chosen architecture by retraining it on train + validation and testing it.

    ``scorer(key, row, steps) -> (variables, {"test_acc": ...}, test logits)``.
    """

    trains = True

    def __init__(self, config: ExperimentConfig, encoding: Any, dataset: Any):
        self.config, self.encoding, self.dataset = config, encoding, dataset

    def __call__(self, key: jax.Array, row: dict[str, Any], steps: int
                 ) -> tuple[Any, dict[str, float], np.ndarray]:
        dataset = self.dataset
        x = np.concatenate([dataset.x_train, dataset.x_val])
        y = np.concatenate([dataset.y_train, dataset.y_val])
        module, _ = self.encoding.build(np.asarray(row["genome"], np.int32))
        params, extra = self.train(key, module, x, y, steps)
        out = predict_logits(module, params, dataset.x_test, self.config.train.eval_batch_size)
        return params, {"test_acc": accuracy(out, dataset.y_test), **extra}, out

    def train(self, key: jax.Array, module: Any, x: np.ndarray, y: np.ndarray, steps: int
              ) -> tuple[Any, dict[str, int]]:
        """``module`` trained on ``(x, y)``, and what to add to its scores."""
        return train_module(key, module, x, y, self.config.train, steps), {}


class TimedRetrainer(Retrainer):
    """A :class:`Retrainer` within a wall-clock budget: the ``models`` it will be asked for
    share ``seconds`` (each its equal share of what is left when it starts), each trained by
    :func:`~evonas.train.train_for_seconds` for at most ``max_steps``; each model's scores
    carry the ``steps`` it trained."""

    def __init__(self, config: ExperimentConfig, encoding: Any, dataset: Any, seconds: float,
                 models: int, max_steps: int | None = None):
        super().__init__(config, encoding, dataset)
        self.deadline = time.perf_counter() + seconds
        self.left, self.max_steps = models, max_steps

    def __call__(self, key: jax.Array, row: dict[str, Any], steps: int
                 ) -> tuple[Any, dict[str, float], np.ndarray]:
        dataset = self.dataset
        x = np.concatenate([dataset.x_train, dataset.x_val])
        y = np.concatenate([dataset.y_train, dataset.y_val])
        module, _ = self.encoding.build(np.asarray(row["genome"], np.int32))
        share = max(1e-3, self.deadline - time.perf_counter()) / max(1, self.left)
        self.left -= 1
        params, used = train_for_seconds(key, module, x, y, self.config.train, share,
                                         max_steps=self.max_steps)
        out = predict_logits(module, params, dataset.x_test, self.config.train.eval_batch_size)
        return params, {"test_acc": accuracy(out, dataset.y_test), "steps": used}, out


class TableReader:
    """Scores a chosen architecture of a tabular run by reading the table's truth and
    report-only columns (``scorer(key, row, steps) -> (None, {column: value}, None)``)."""

    trains = False

    def __init__(self, table: Any):
        self.table = table
        self.columns = tuple(dict.fromkeys((table.truth, *table.report)))

    def __call__(self, key: jax.Array, row: dict[str, Any], steps: int
                 ) -> tuple[None, dict[str, float], None]:
        genome = jnp.asarray([row["genome"]], jnp.int32)
        return None, {c: float(self.table.lookup(genome, c)[0]) for c in self.columns}, None


Scorer = Retrainer | TableReader


def top_k(rows: list[dict[str, Any]], k: int, maximize: bool) -> list[dict[str, Any]]:
    """The ``k`` best evaluated (not cached, not failed) rows; ties go to the earlier id."""
    ok = [r for r in rows if not r["failed"] and not r["cached"] and r["fitness"] is not None
          and math.isfinite(r["fitness"])]
    sign = -1.0 if maximize else 1.0
    return sorted(ok, key=lambda r: (sign * r["fitness"], r["id"]))[:k]


@dataclasses.dataclass
class Member:
    """A chosen architecture as the final stage scored it."""

    rank: int  # 1 = the best by search fitness
    row: dict[str, Any]
    params: Any  # the trained variables (None: read from a table)
    scores: dict[str, float]  # test accuracy, or the table's columns
    logits: np.ndarray | None = None  # on the test split


@dataclasses.dataclass
class Finish:
    """The context every final step reads and adds to.

    Attributes:
        config: the experiment.
        root: the run directory.
        rows: the history's rows.
        scorer: how a chosen architecture is scored (:class:`Retrainer`, :class:`TableReader`).
        encoding_options: the encoding's resolved options (exported with every model).
        members: the retrained top k, best first (the ``retrain`` step's).
        summary: ``best/final.json`` as the steps build it.
        guard: called before every write (the run directory's ``ensure_here``: a run whose
            directory was moved stops instead of writing elsewhere).
        progress: told what a long step is doing (``"retraining 2/3: #17, 2000 steps"``).
        legacy_keys: the run recorded a fingerprint before version 3: its architectures
            retrain from the keys of that time (:mod:`evonas.streams`), so it finishes as it
            would have.
    """

    config: ExperimentConfig
    root: Path
    rows: list[dict[str, Any]]
    scorer: Scorer
    encoding_options: dict[str, Any]
    members: list[Member] = dataclasses.field(default_factory=list)
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    guard: Callable[[], None] = lambda: None
    progress: Callable[[str], None] = lambda text: None
    legacy_keys: bool = False
    _scored: dict[tuple[int, int], tuple[Any, dict[str, float], Any]] = dataclasses.field(
        default_factory=dict)

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.root)

    @property
    def key(self) -> jax.Array:
        """The final stage's key (pruning's fine-tuning draws from it)."""
        return streams.stream(self.config.search.seed, "final")

    @property
    def retrain_steps(self) -> int:
        """The steps the best was retrained for: its own under ``final.retrain.time_budget``
        (recorded in the summary), else ``final.retrain.steps``."""
        return int(self.summary.get("retrain_steps") or self.config.final.retrain.steps)

    def retrain_key(self, row: dict[str, Any], legacy: jax.Array) -> jax.Array:
        """The key ``row``'s architecture retrains from: its own, ``fold_in(retrain stream,
        id)``, wherever it is retrained (the top k, the front, a budget, a student alone), so
        it scores the same everywhere; ``legacy`` in a run of before."""
        if self.legacy_keys:
            return legacy
        return jax.random.fold_in(streams.stream(self.config.search.seed, "retrain"),
                                  int(row["id"]))

    def score(self, row: dict[str, Any], steps: int, legacy: jax.Array
              ) -> tuple[Any, dict[str, float], Any]:
        """``row``'s architecture scored (retrained for ``steps`` and tested, or read from
        the table), from :meth:`retrain_key`; an architecture retrained before with the same
        steps in this process is not retrained again (the same key gives the same numbers)."""
        memo = (int(row["id"]), int(steps))
        if memo not in self._scored or self.legacy_keys:
            if self.scorer.trains:
                self.progress(f"#{row['id']}: {steps} steps on train + validation")
            self._scored[memo] = self.scorer(self.retrain_key(row, legacy), row, steps)
        return self._scored[memo]

    @property
    def encoding(self) -> Any:
        return getattr(self.scorer, "encoding", None)

    @property
    def dataset(self) -> Any:
        return getattr(self.scorer, "dataset", None)

    def export(self, directory: Path, row: dict[str, Any], params: Any,
               scores: dict[str, float], extra: dict[str, Any] | None = None) -> None:
        """Exports one architecture of the run with its scores (``architecture.json`` fields:
        objective, the scores, dataset or benchmark, then ``extra``) into ``directory``."""
        self.guard()
        evaluator = self.config.evaluator
        source = ({"benchmark": evaluator.benchmark or self.config.encoding.name}
                  if evaluator.tabular else {"dataset": self.config.dataset.name,
                                             "preprocessing": self.dataset.preprocessing(),
                                             "class_names": _names(self.dataset)})
        export_model(directory, self.config.encoding.name, self.encoding_options, row, params,
                     {"objective": self.config.search.objectives[0].name, **scores, **source,
                      **(extra or {})}, root=self.root)


    def write_json(self, path: Path, value: Any) -> None:
        """Writes ``value`` as JSON to ``path`` inside the run directory, atomically (a step's
        marker file, written last)."""
        self.guard()
        atomic_write_text(path, json.dumps(value, indent=2, default=float) + "\n", self.root)


def _names(dataset: Any) -> list[str]:
    """The class names of the logits, in order (the labels themselves where none were given)."""
    names = dataset.class_names
    return list(names) if names is not None else [str(i) for i in range(dataset.num_classes)]


def scorer_for(config: ExperimentConfig, parts: Any = None) -> tuple[Scorer, dict[str, Any]]:
    """How a run scores what it chose, and its encoding's resolved options: from its built
    ``Components`` when given, else built from the config alone (dataset and encoding, or the
    table; no strategy)."""
    if parts is not None:
        if parts.table is not None:
            return TableReader(parts.table), {}
        return Retrainer(config, parts.encoding, parts.dataset), parts.encoding_options
    if config.evaluator.tabular:
        return TableReader(build_table(config)), {}
    dataset, encoding, options = build_model_parts(config)
    return Retrainer(config, encoding, dataset), options


def settings(section: Any, name: str, **given: Any) -> Any:
    """A final step's settings for a command on a finished run: the section's defaults with
    the values ``given`` (None: the default), checked, errors named ``<name> <field>``.

    Raises:
        ValueError: one line for a setting out of range.
    """
    chosen = {k: v for k, v in given.items() if v is not None}
    try:
        return dataclasses.replace(section(), **chosen)
    except ValueError as err:
        prefix = f"final.{section.__name__.removesuffix('Config').lower()}."
        raise ValueError(str(err).replace(prefix, f"{name} ")) from None


def trained_test_accuracy(finish: Finish, module: Any, variables: Any) -> float:
    """``module``'s test accuracy with ``variables`` on the run's test split."""
    dataset = finish.dataset
    logits = predict_logits(module, variables, dataset.x_test,
                            finish.config.train.eval_batch_size)
    return accuracy(logits, dataset.y_test)
