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
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    models, logits, best_params = [], [], None
    for rank, row in enumerate(chosen):
        module, _ = encoding.build(np.asarray(row["genome"], np.int32))
        params = train_module(jax.random.fold_in(key, rank), module, x, y, config.train,
                              config.final.retrain_steps)
        out = predict_logits(module, params, dataset.x_test, config.train.eval_batch_size)
        logits.append(out)
        models.append({"rank": rank + 1, "id": row["id"], "genome": row["genome"],
                       "fitness": row["fitness"], "params": row["params"],
                       "test_acc": accuracy(out, dataset.y_test)})
        if rank == 0:
            best_params = params
    result: dict[str, Any] = {"retrain_steps": config.final.retrain_steps, "models": models,
                              "best_test_acc": models[0]["test_acc"]}
    if config.final.ensemble:
        result["ensemble_size"] = len(models)
        result["ensemble_test_acc"] = accuracy(np.mean(logits, axis=0), dataset.y_test)
    best = chosen[0]
    _save_params(best_dir, best_params)
    architecture = {
        "encoding": config.encoding.name,
        "encoding_options": json.loads(json.dumps(encoding_options, default=list)),
        "genome": best["genome"],
        "description": best["description"],
        "cost": {"params": best["params"], "flops": best["flops"]},
        "history_id": best["id"],
        "fitness": best["fitness"],
        "objective": config.search.objectives[0].name,
        "test_acc": models[0]["test_acc"],
        "dataset": config.dataset.name,
    }
    atomic_write_text(best_dir / ARCHITECTURE, json.dumps(architecture, indent=2) + "\n")
    atomic_write_text(best_dir / FINAL, json.dumps(result, indent=2) + "\n")
    return result


def read_final(best_dir: Path) -> dict[str, Any] | None:
    """``final.json`` of a run whose final stage completed, else None."""
    path = best_dir / FINAL
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
