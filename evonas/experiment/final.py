"""After the search: the top k retrained on train + validation, tested, ensembled; the best
exported.

The top k are ranked by search fitness (validation), never by test accuracy. In a training run
each is rebuilt as a standalone module (``encoding.build``) and trained by the standalone trainer
(``evonas.train.train_module``) for ``final.retrain_steps`` on the train and validation splits
together; the test split is touched only here. The ensemble averages the k models' logits. In a
tabular run nothing is trained: the top k's report columns are read from the table. The best
(rank 1) is exported to ``best/`` (``evonas.store.export_model``); ``best/final.json`` holds every
model's scores and is written last, so its presence means the final stage is complete (a resumed
run skips it).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.data import load_dataset
from evonas.experiment.components import build_model_parts, build_table
from evonas.experiment.config import ExperimentConfig
from evonas.store import RunPaths, atomic_write_text, export_model, load_model, read_json
from evonas.store.layout import ARCHITECTURE, FINAL
from evonas.train import accuracy, predict_logits, train_module

FINAL_KEY = 2  # folded into the search seed's key: the final stage's stream


def final_key(config: ExperimentConfig) -> jax.Array:
    """The final stage's key; rank ``r``'s retraining uses ``fold_in(final_key, r)``."""
    return jax.random.fold_in(jax.random.key(config.search.seed), FINAL_KEY)


def top_k(rows: list[dict[str, Any]], k: int, maximize: bool) -> list[dict[str, Any]]:
    """The ``k`` best evaluated (not cached, not failed) rows; ties go to the earlier id."""
    ok = [r for r in rows if not r["failed"] and not r["cached"] and r["fitness"] is not None
          and math.isfinite(r["fitness"])]
    sign = -1.0 if maximize else 1.0
    return sorted(ok, key=lambda r: (sign * r["fitness"], r["id"]))[:k]


class Retrainer:
    """Scores a chosen architecture by retraining it on train + validation and testing it.

    ``finisher(key, row, steps) -> (params, {"test_acc": ...}, test logits)``.
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
        params = train_module(key, module, x, y, self.config.train, steps)
        out = predict_logits(module, params, dataset.x_test, self.config.train.eval_batch_size)
        return params, {"test_acc": accuracy(out, dataset.y_test)}, out


class TableReader:
    """Scores a chosen architecture of a tabular run by reading the table's truth and
    report-only columns (``finisher(key, row, steps) -> (None, {column: value}, None)``)."""

    trains = False

    def __init__(self, table: Any):
        self.table = table
        self.columns = tuple(dict.fromkeys((table.truth, *table.report)))

    def __call__(self, key: jax.Array, row: dict[str, Any], steps: int
                 ) -> tuple[None, dict[str, float], None]:
        genome = jnp.asarray([row["genome"]], jnp.int32)
        return None, {c: float(self.table.lookup(genome, c)[0]) for c in self.columns}, None


def finisher_for(config: ExperimentConfig, parts: Any) -> Retrainer | TableReader:
    """The way a run scores what it chose (from its built ``Components``): retraining, or
    reading its table."""
    if parts.table is not None:
        return TableReader(parts.table)
    return Retrainer(config, parts.encoding, parts.dataset)


def prepare_finisher(config: ExperimentConfig) -> tuple[Retrainer | TableReader, dict[str, Any]]:
    """The finisher of a finished run and its encoding's resolved options, built from its
    config alone (dataset and encoding, or the table; no strategy): for ``evonas front``."""
    if config.evaluator.tabular:
        return TableReader(build_table(config)), {}
    dataset, encoding, options = build_model_parts(config)
    return Retrainer(config, encoding, dataset), options


def export(directory: Path, config: ExperimentConfig, encoding_options: dict[str, Any],
           row: dict[str, Any], params: Any, scores: dict[str, float],
           extra: dict[str, Any] | None = None, root: Path | None = None) -> None:
    """Exports one architecture of the run with its scores (``architecture.json`` fields:
    objective, the scores (``test_acc``), dataset or benchmark, then ``extra``) into
    ``directory`` inside the run directory ``root`` (default ``directory``'s parent)."""
    evaluator = config.evaluator
    source = ({"benchmark": evaluator.benchmark or config.encoding.name}
              if evaluator.tabular else {"dataset": config.dataset.name})
    export_model(directory, config.encoding.name, encoding_options, row, params,
                 {"objective": config.search.objectives[0].name, **scores, **source,
                  **(extra or {})}, root=root)


def run_final(key: jax.Array, config: ExperimentConfig, finisher: Retrainer | TableReader,
              encoding_options: dict[str, Any], rows: list[dict[str, Any]],
              best_dir: Path) -> dict[str, Any] | None:
    """Scores the top ``final.retrain_top_k`` (retrained and tested, or read from the table),
    ensembles them (training runs) and exports the best.

    Returns:
        The contents of ``final.json``, or None when nothing is to be scored (no successful
        evaluation, or ``retrain_top_k=0``).
    """
    maximize = config.search.objectives[0].maximize
    chosen = top_k(rows, config.final.retrain_top_k, maximize)
    if not chosen:
        return None
    models, logits, trained = [], [], []
    for rank, row in enumerate(chosen):
        params, scores, out = finisher(jax.random.fold_in(key, rank), row,
                                       config.final.retrain_steps)
        logits.append(out)
        trained.append(params)
        models.append({"rank": rank + 1, "id": row["id"], "genome": row["genome"],
                       "fitness": row["fitness"], "params": row["params"], **scores})
    best_params = trained[0]
    best_scores = {k: models[0][k] for k in scores}
    root = best_dir.parent
    if finisher.trains:
        result: dict[str, Any] = {"retrain_steps": config.final.retrain_steps, "models": models,
                                  "best_test_acc": models[0]["test_acc"]}
        if config.final.ensemble:
            result["ensemble_size"] = len(models)
            result["ensemble_test_acc"] = accuracy(np.mean(logits, axis=0),
                                                   finisher.dataset.y_test)
            # The other members are kept, so that `evonas distil` can use the ensemble later.
            for rank in range(1, len(chosen)):
                export(RunPaths(root).ensemble / str(rank + 1), config, encoding_options,
                       chosen[rank], trained[rank], {"test_acc": models[rank]["test_acc"]},
                       {"rank": rank + 1}, root=root)
        if config.final.distil and len(chosen) >= 2:
            result["distillation"] = _distil(key, config, finisher, encoding_options, chosen,
                                             trained, models, result, root)
        if config.final.prune is not None:
            result["pruning"] = _prune(key, config, finisher, encoding_options, chosen[0],
                                       best_params, root)
    else:
        result = {"protocol": finisher.table.protocol, "benchmark": finisher.table.name,
                  "models": models, **{f"best_{k}": v for k, v in best_scores.items()}}
    export(best_dir, config, encoding_options, chosen[0], best_params, best_scores)
    atomic_write_text(best_dir / FINAL, json.dumps(result, indent=2) + "\n", best_dir.parent)
    return result


def _distil(key: jax.Array, config: ExperimentConfig, finisher: Retrainer,
            encoding_options: dict[str, Any], chosen: list[dict[str, Any]], trained: list[Any],
            models: list[dict[str, Any]], result: dict[str, Any], root: Path
            ) -> dict[str, Any]:
    """``final.distil``: the ensemble just retrained distilled into the best architecture,
    exported to ``distilled/``; returns ``distil.json``'s contents."""
    from evonas.experiment.distil import distil_ensemble

    members = [(finisher.encoding.build(np.asarray(r["genome"], np.int32))[0], p)
               for r, p in zip(chosen, trained)]
    return distil_ensemble(
        jax.random.fold_in(key, 0), finisher, members, [m["id"] for m in models], chosen[0],
        models[0]["test_acc"], config.final.distil_steps or config.final.retrain_steps,
        config.final.distil_temperature, config.final.distil_alpha, root, encoding_options,
        teacher_test=result["ensemble_test_acc"])


def _prune(key: jax.Array, config: ExperimentConfig, finisher: Retrainer,
           encoding_options: dict[str, Any], best: dict[str, Any], best_params: Any, root: Path
           ) -> dict[str, Any]:
    """``final.prune``: the deployed network (distilled, else the best) pruned, fine-tuned and
    exported to ``pruned/``; returns ``prune.json``'s contents."""
    from evonas.experiment.prune import _PRUNE_KEY, prune_model, prune_steps, write_pruned

    source, params = "best", best_params
    if config.final.distil:
        source = "distilled"
        _, params, _ = load_model(RunPaths(root).distilled)
    steps = prune_steps(config, config.final.prune_steps)
    genome, tuned, summary = prune_model(
        jax.random.fold_in(key, _PRUNE_KEY), config, finisher.encoding, finisher.dataset,
        best["genome"], params, config.final.prune, config.final.prune_sparsity, steps)
    write_pruned(root, config, finisher.encoding, encoding_options,
                 {"history_id": best["id"], "from": source}, genome, tuned, summary)
    return summary


def read_final(best_dir: Path) -> dict[str, Any] | None:
    """``final.json`` of a run whose final stage completed, else None."""
    return read_json(Path(best_dir) / FINAL)


def evaluate_model(run_dir: str | os.PathLike) -> float:
    """The test accuracy of a run's exported model on its run's dataset (as in ``final.json``)."""
    module, variables, _ = load_model(run_dir)
    root = Path(run_dir)
    root = root.parent if (root / ARCHITECTURE).is_file() else root
    config = ExperimentConfig.from_yaml(RunPaths(root).config, plugins=False)
    dataset = load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                           seed=config.dataset.seed, limit=config.dataset.limit)
    logits = predict_logits(module, variables, dataset.x_test, config.train.eval_batch_size)
    return accuracy(logits, dataset.y_test)
