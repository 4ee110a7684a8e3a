"""Knowledge distillation of a run's retrained ensemble into one network (Hinton et al. 2015).

The teacher is the final stage's ensemble: the top ``k`` retrained models (``best/`` and
``ensemble/<rank>/``), whose averaged logits on train + validation are the soft targets. The
student (the best architecture, or any evaluated one by history id, e.g. the best within a budget
that ``evonas front`` found) is trained from scratch by the standalone trainer on train +
validation against ``(1 - alpha) * CE(labels) + alpha * T^2 * CE(softmax(teacher / T),
softmax(student / T))``, with the same initialisation, batch order and steps as the same
architecture trained alone, so the two differ only by the loss. It is tested, exported to
``distilled/`` (``architecture.json``, ``params/``) like the best, and ``distilled/distil.json``
(written last) holds teacher, student alone and student distilled side by side.

Used by the final stage (``final.distil: true``) and by ``evonas distil DIR``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evonas.experiment.components import build_model_parts
from evonas.experiment.config import ExperimentConfig
from evonas.store import RunDir, atomic_write_text, export_model, load_model, read_json
from evonas.store.layout import BEST, DISTIL_FILE, ENSEMBLE, RunPaths
from evonas.store.run_dir import RunLock
from evonas.train import accuracy, predict_logits, train_module


def member_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """The exported models of a run's ensemble, by rank: ``best/`` then ``ensemble/<rank>/``."""
    paths = RunPaths(run_dir)
    out = [paths.best] if (paths.best / "architecture.json").is_file() else []
    if paths.ensemble.is_dir():
        ranked = sorted((int(p.name), p) for p in paths.ensemble.iterdir()
                        if p.name.isdigit() and (p / "architecture.json").is_file())
        out += [p for _, p in ranked]
    return out


def teacher_logits(modules: list[tuple[Any, Any]], x: np.ndarray, batch_size: int
                   ) -> np.ndarray:
    """The ensemble's averaged logits on ``x`` (``float32[N, C]``), as the final stage
    ensembles them."""
    return np.mean([predict_logits(m, v, x, batch_size) for m, v in modules], axis=0)


def distil_student(key: jax.Array, config: ExperimentConfig, encoding: Any, dataset: Any,
                   teacher: np.ndarray, row: dict[str, Any], steps: int, temperature: float,
                   alpha: float) -> tuple[Any, float]:
    """Trains ``row``'s architecture on train + validation against ``teacher``'s logits (of the
    same rows) and the labels; returns ``(variables, test accuracy)``."""
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    module, _ = encoding.build(np.asarray(row["genome"], np.int32))
    params = train_module(key, module, x, y, config.train, steps, teacher_logits=teacher,
                          temperature=temperature, alpha=alpha)
    logits = predict_logits(module, params, dataset.x_test, config.train.eval_batch_size)
    return params, accuracy(logits, dataset.y_test)


def write_distilled(run_dir: Path, config: ExperimentConfig, encoding_options: dict[str, Any],
                    row: dict[str, Any], params: Any, summary: dict[str, Any]) -> None:
    """Exports the distilled student to ``distilled/`` and writes ``distil.json`` last."""
    paths = RunPaths(run_dir)
    export_model(paths.distilled, config.encoding.name, encoding_options, row, params,
                 {"objective": config.search.objectives[0].name, "dataset": config.dataset.name,
                  "test_acc": summary["student"]["distilled_test_acc"],
                  "distilled_from": summary["teacher"]["members"],
                  "temperature": summary["temperature"], "alpha": summary["alpha"]},
                 root=run_dir)
    atomic_write_text(paths.distilled / DISTIL_FILE, json.dumps(summary, indent=2) + "\n",
                      run_dir)


def distil_ensemble(key: jax.Array, finisher: Any, members: list[tuple[Any, Any]],
                    ids: list[int], row: dict[str, Any], recorded_alone: float | None, steps: int,
                    temperature: float, alpha: float, root: Path,
                    encoding_options: dict[str, Any], teacher_test: float | None = None
                    ) -> dict[str, Any]:
    """Distils the ensemble ``members`` (``(module, variables)``, history ``ids``) into
    ``row``'s architecture, exports it to ``root/distilled`` and returns ``distil.json``.

    ``finisher`` is the run's :class:`~evonas.experiment.final.Retrainer` (config, encoding,
    data). The student alone is ``recorded_alone`` when it was retrained with ``steps`` by the
    final stage; otherwise it is trained alone here, with the same ``key``.
    """
    config, encoding, dataset = finisher.config, finisher.encoding, finisher.dataset
    batch = config.train.eval_batch_size
    x = np.concatenate([dataset.x_train, dataset.x_val])
    teacher = teacher_logits(members, x, batch)
    if teacher_test is None:
        teacher_test = accuracy(teacher_logits(members, dataset.x_test, batch), dataset.y_test)
    alone = recorded_alone
    if alone is None or steps != config.final.retrain_steps:
        _, scores, _ = finisher(key, row, steps)
        alone = scores["test_acc"]
    params, distilled = distil_student(key, config, encoding, dataset, teacher, row, steps,
                                       temperature, alpha)
    summary = distillation_summary(ids, teacher_test, row, alone, distilled, temperature, alpha,
                                   steps)
    write_distilled(root, config, encoding_options, row, params, summary)
    return summary


def check_settings(temperature: float, alpha: float, steps: int | None) -> None:
    """One line for each setting out of range."""
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"distillation temperature={temperature!r} is not allowed; it must be "
                         "a number > 0 (Hinton et al. use 1 to 20)")
    if not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation alpha={alpha!r} is not allowed; it is the weight of the "
                         "teacher's soft targets, in [0, 1]")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                              or steps < 1):
        raise ValueError(f"distillation steps={steps!r} is not allowed; give a positive integer")


def distil_run(run_dir: str | os.PathLike, student: int | None = None,
               temperature: float = 4.0, alpha: float = 0.9, steps: int | None = None
               ) -> dict[str, Any]:
    """``evonas distil DIR``: distils a finished run's ensemble into one student.

    Args:
        run_dir: a run whose final stage kept an ensemble of at least two retrained models.
        student: the history id of the architecture to distil into (default: the best).
        temperature: the softmax temperature of teacher and student (> 0).
        alpha: the weight of the soft targets, in [0, 1] (``1 - alpha`` on the labels).
        steps: optimiser steps (default: the run's ``final.retrain_steps``).

    Returns:
        The contents of ``distilled/distil.json``.

    Raises:
        ValueError: not a finished training run, no ensemble to distil from, an unknown student
            id, or a setting out of range (one line each; nothing is written).
    """
    from evonas.experiment.final import Retrainer, final_key, read_final
    from evonas.experiment.runner import run_config

    check_settings(temperature, alpha, steps)
    run = RunDir(run_dir, readonly=True)
    config = run_config(run)
    if config.evaluator.tabular:
        raise ValueError(f"{run.path} is a tabular run: it trained no models, so there is no "
                         "ensemble to distil from")
    final = read_final(run.paths.best)
    members = member_dirs(run.path)
    if final is None or len(members) < 2:
        raise ValueError(
            f"{run.path} has no ensemble to distil from ({len(members)} retrained model"
            f"{'' if len(members) == 1 else 's'} kept in {BEST}/ and {ENSEMBLE}/); run it with "
            "final.retrain_top_k >= 2 (and final.ensemble: true)")
    with run.history as history:
        rows = {r["id"]: r for r in history.rows()}
    best_id = json.loads((run.paths.best / "architecture.json").read_text())["history_id"]
    student_id = best_id if student is None else int(student)
    if student_id not in rows or rows[student_id]["failed"]:
        raise ValueError(f"student={student!r} is not an evaluated architecture of {run.path}; "
                         f"give a history id (the best is {best_id})")
    row = rows[student_id]
    steps = steps or config.final.retrain_steps
    lock = RunLock(run.path)  # distilled/ is written into the run directory: own it meanwhile
    try:
        dataset, encoding, options = build_model_parts(config)
        loaded = [load_model(d) for d in members]
        ids = [int(info["history_id"]) for _, _, info in loaded]
        # The student trains with the key its architecture was (or would be) retrained with.
        rank = ids.index(student_id) if student_id in ids else len(ids) + student_id
        alone = next((m["test_acc"] for m in final["models"] if m["id"] == student_id), None)
        summary = distil_ensemble(jax.random.fold_in(final_key(config), rank),
                                  Retrainer(config, encoding, dataset),
                                  [(m, v) for m, v, _ in loaded], ids, row, alone, steps,
                                  temperature, alpha, run.path, options)
    finally:
        lock.release()
    return summary


def distillation_summary(ids: list[int], teacher_test: float, row: dict[str, Any],
                         alone: float, distilled: float, temperature: float, alpha: float,
                         steps: int) -> dict[str, Any]:
    """``distil.json``: teacher, student alone and student distilled side by side."""
    return {
        "teacher": {"members": ids, "test_acc": teacher_test},
        "student": {"id": row["id"], "genome": row["genome"], "params": row["params"],
                    "alone_test_acc": alone, "distilled_test_acc": distilled},
        "temperature": float(temperature), "alpha": float(alpha), "steps": int(steps),
    }


def read_distilled(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``distilled/distil.json`` of a run, or None."""
    return read_json(RunPaths(run_dir).distilled / DISTIL_FILE)
