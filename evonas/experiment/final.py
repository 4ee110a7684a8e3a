"""After the search: retrain the top k on train + validation, test them, ensemble, export the best.

The top k are ranked by search fitness (validation), never by test accuracy. Each is rebuilt as a
standalone module (``encoding.build``) and trained for ``final.retrain_steps`` on the train and
validation splits together; the test split is touched only here. The ensemble averages the k
models' logits. The best (rank 1) is exported to ``best/``:

- ``params/``: its variables (orbax);
- ``architecture.json``: encoding and options, genome, description, cost, scores;
- ``final.json``: every retrained model's test accuracy and the ensemble's; written last, so its
  presence means the final stage is complete (a resumed run skips it).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from evonas.experiment.config import ExperimentConfig
from evonas.experiment.retrain import accuracy, predict_logits, train_module
from evonas.store import atomic_write_text

ARCHITECTURE = "architecture.json"
PARAMS = "params"
FINAL = "final.json"


def top_k(rows: list[dict[str, Any]], k: int, maximize: bool) -> list[dict[str, Any]]:
    """The ``k`` best trained (not cached, not failed) rows; ties go to the earlier id."""
    ok = [r for r in rows if not r["failed"] and not r["cached"] and r["fitness"] is not None
          and math.isfinite(r["fitness"])]
    sign = -1.0 if maximize else 1.0
    return sorted(ok, key=lambda r: (sign * r["fitness"], r["id"]))[:k]


def _save_params(directory: Path, params: Any) -> None:
    """Saves ``params`` to ``directory/params`` through a temporary directory and a rename."""
    target, tmp = directory / PARAMS, directory / f".{PARAMS}.tmp"
    for path in (tmp, target):
        if path.exists():
            shutil.rmtree(path)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(tmp.absolute(), jax.tree.map(np.asarray, params))
        checkpointer.wait_until_finished()
    tmp.rename(target)


def export_model(directory: Path, config: ExperimentConfig, encoding_options: dict[str, Any],
                 row: dict[str, Any], params: Any, test_acc: float,
                 extra: dict[str, Any] | None = None) -> None:
    """Writes a retrained architecture as ``directory/params/`` and ``architecture.json``
    (what ``evonas.load_model`` reads).

    Args:
        directory: where to write (created).
        config: the experiment.
        encoding_options: the encoding's resolved options (input shape and classes included).
        row: the architecture's history row.
        params: its retrained variables.
        test_acc: its test accuracy after retraining.
        extra: more fields for ``architecture.json`` (e.g. the budget it was chosen for).
    """
    directory.mkdir(parents=True, exist_ok=True)
    _save_params(directory, params)
    architecture = {
        "encoding": config.encoding.name,
        "encoding_options": json.loads(json.dumps(encoding_options, default=list)),
        "genome": row["genome"],
        "description": row["description"],
        "cost": {"params": row["params"], "flops": row["flops"]},
        "metrics": row.get("metrics") or {},
        "history_id": row["id"],
        "fitness": row["fitness"],
        "objective": config.search.objectives[0].name,
        "test_acc": test_acc,
        "dataset": config.dataset.name,
        **(extra or {}),
    }
    atomic_write_text(directory / ARCHITECTURE, json.dumps(architecture, indent=2) + "\n")


def retrain_and_test(key: jax.Array, config: ExperimentConfig, encoding: Any, dataset: Any,
                     row: dict[str, Any], steps: int) -> tuple[Any, np.ndarray, float]:
    """Retrains ``row``'s architecture on train + validation for ``steps`` and tests it.

    Returns:
        ``(params, test logits, test accuracy)``.
    """
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    module, _ = encoding.build(np.asarray(row["genome"], np.int32))
    params = train_module(key, module, x, y, config.train, steps)
    out = predict_logits(module, params, dataset.x_test, config.train.eval_batch_size)
    return params, out, accuracy(out, dataset.y_test)


def run_final(key: jax.Array, config: ExperimentConfig, encoding: Any,
              encoding_options: dict[str, Any], dataset: Any, rows: list[dict[str, Any]],
              best_dir: Path) -> dict[str, Any] | None:
    """Retrains the top ``final.retrain_top_k``, tests them, ensembles them, exports the best.

    Returns:
        The contents of ``final.json``, or None when nothing is to be retrained (no successful
        evaluation, or ``retrain_top_k=0``).
    """
    maximize = config.search.objectives[0].maximize
    chosen = top_k(rows, config.final.retrain_top_k, maximize)
    if not chosen:
        return None
    models, logits, best_params = [], [], None
    for rank, row in enumerate(chosen):
        params, out, test_acc = retrain_and_test(jax.random.fold_in(key, rank), config, encoding,
                                                 dataset, row, config.final.retrain_steps)
        logits.append(out)
        models.append({"rank": rank + 1, "id": row["id"], "genome": row["genome"],
                       "fitness": row["fitness"], "params": row["params"],
                       "test_acc": test_acc})
        if rank == 0:
            best_params = params
    result: dict[str, Any] = {"retrain_steps": config.final.retrain_steps, "models": models,
                              "best_test_acc": models[0]["test_acc"]}
    if config.final.ensemble:
        result["ensemble_size"] = len(models)
        result["ensemble_test_acc"] = accuracy(np.mean(logits, axis=0), dataset.y_test)
    export_model(best_dir, config, encoding_options, chosen[0], best_params,
                 models[0]["test_acc"])
    atomic_write_text(best_dir / FINAL, json.dumps(result, indent=2) + "\n")
    return result


def read_final(best_dir: Path) -> dict[str, Any] | None:
    """``final.json`` of a run whose final stage completed, else None."""
    path = best_dir / FINAL
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
