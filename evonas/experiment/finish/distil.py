"""The ``distil`` step: knowledge distillation of the retrained ensemble into one network (Hinton
et al. 2015), for ``final.distil`` and ``evonas distil``.

The teacher is the final stage's ensemble: the top ``k`` retrained models (``best/`` and
``ensemble/<rank>/``), whose averaged logits on train + validation are the soft targets. The
student (the best architecture, or any evaluated one by history id, e.g. the best within a budget
that ``evonas front`` found) is trained from scratch by the standalone trainer on train +
validation against ``(1 - alpha) * CE(labels) + alpha * T^2 * CE(softmax(teacher / T),
softmax(student / T))``, with the same initialisation, batch order and steps as the same
architecture trained alone, so the two differ only by the loss. It is tested, exported to
``distilled/`` (``architecture.json``, ``params/``) like the best, and ``distilled/distil.json``
(written last) holds teacher, student alone and student distilled side by side.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evonas.experiment.config import DistilConfig
from evonas.experiment.finish.context import Finish, scorer_for, settings
from evonas.experiment.loading import run_config
from evonas.store import RunDir, load_model, read_json
from evonas.store.layout import ARCHITECTURE, BEST, DISTIL_FILE, ENSEMBLE, RunPaths
from evonas.store.run_dir import RunLock
from evonas.train import accuracy, predict_logits, train_module


class Distil:
    """The retrained ensemble distilled into the best architecture (``final.distil``)."""

    name = "distil"

    def wanted(self, finish: Finish) -> bool:
        return (finish.config.final.distil is not None and finish.scorer.trains
                and len(finish.members) >= 2)

    def run(self, finish: Finish) -> None:
        build = finish.encoding.build
        members = [(build(np.asarray(m.row["genome"], np.int32))[0], m.params)
                   for m in finish.members]
        best = finish.members[0]
        finish.summary["distillation"] = distil_ensemble(
            finish, members, [m.row["id"] for m in finish.members], best.row,
            best.scores["test_acc"], finish.config.final.distil,
            finish.retrain_key(best.row, jax.random.fold_in(finish.key, 0)),
            teacher_test=finish.summary.get("ensemble_test_acc"))


def teacher_logits(modules: list[tuple[Any, Any]], x: np.ndarray, batch_size: int
                   ) -> np.ndarray:
    """The ensemble's averaged logits on ``x`` (``float32[N, C]``), as the final stage
    ensembles them."""
    return np.mean([predict_logits(m, v, x, batch_size) for m, v in modules], axis=0)


def distil_student(finish: Finish, key: jax.Array, teacher: np.ndarray, row: dict[str, Any],
                   steps: int, settings: DistilConfig) -> tuple[Any, float]:
    """Trains ``row``'s architecture on train + validation against ``teacher``'s logits (of the
    same rows) and the labels, from ``key``; returns ``(variables, test accuracy)``."""
    config, dataset = finish.config, finish.dataset
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    module, _ = finish.encoding.build(np.asarray(row["genome"], np.int32))
    params = train_module(key, module, x, y, config.train, steps, teacher_logits=teacher,
                          temperature=settings.temperature, alpha=settings.alpha)
    logits = predict_logits(module, params, dataset.x_test, config.train.eval_batch_size)
    return params, accuracy(logits, dataset.y_test)


def distil_ensemble(finish: Finish, members: list[tuple[Any, Any]], ids: list[int],
                    row: dict[str, Any], recorded_alone: float | None, settings: DistilConfig,
                    key: jax.Array, teacher_test: float | None = None) -> dict[str, Any]:
    """Distils the ensemble ``members`` (``(module, variables)``, history ``ids``) into
    ``row``'s architecture, exports it to ``distilled/`` and returns ``distil.json``.

    The student alone is ``recorded_alone`` when the final stage retrained it with the same
    steps; otherwise it is trained alone here, with the same ``key``.
    """
    config, dataset = finish.config, finish.dataset
    steps = settings.steps or finish.retrain_steps
    batch = config.train.eval_batch_size
    teacher = teacher_logits(members, np.concatenate([dataset.x_train, dataset.x_val]), batch)
    if teacher_test is None:
        teacher_test = accuracy(teacher_logits(members, dataset.x_test, batch), dataset.y_test)
    alone = recorded_alone
    if alone is None or steps != finish.retrain_steps:
        alone = finish.score(row, steps, key)[1]["test_acc"]
    params, distilled = distil_student(finish, key, teacher, row, steps, settings)
    summary = {
        "teacher": {"members": ids, "test_acc": teacher_test},
        "student": {"id": row["id"], "genome": row["genome"], "params": row["params"],
                    "alone_test_acc": alone, "distilled_test_acc": distilled},
        "temperature": float(settings.temperature), "alpha": float(settings.alpha),
        "steps": int(steps),
    }
    finish.export(finish.paths.distilled, row, params,
                  {"test_acc": distilled, "distilled_from": ids,
                   "temperature": summary["temperature"], "alpha": summary["alpha"]})
    finish.write_json(finish.paths.distilled / DISTIL_FILE, summary)
    return summary


def member_dirs(run_dir: str | os.PathLike) -> list[Path]:
    """The exported models of a run's ensemble, by rank: ``best/`` then ``ensemble/<rank>/``."""
    paths = RunPaths(run_dir)
    out = [paths.best] if (paths.best / ARCHITECTURE).is_file() else []
    if paths.ensemble.is_dir():
        ranked = sorted((int(p.name), p) for p in paths.ensemble.iterdir()
                        if p.name.isdigit() and (p / ARCHITECTURE).is_file())
        out += [p for _, p in ranked]
    return out


def distil_run(run_dir: str | os.PathLike, student: int | None = None,
               temperature: float | None = None, alpha: float | None = None,
               steps: int | None = None) -> dict[str, Any]:
    """``evonas distil DIR``: distils a finished run's ensemble into one student.

    Args:
        run_dir: a run whose final stage kept an ensemble of at least two retrained models.
        student: the history id of the architecture to distil into (default: the best).
        temperature, alpha, steps: as :class:`~evonas.experiment.config.DistilConfig` (its
            defaults where None; steps: the best's retraining steps).

    Returns:
        The contents of ``distilled/distil.json``.

    Raises:
        ValueError: not a finished training run, no ensemble to distil from, an unknown student
            id, or a setting out of range (one line each; nothing is written).
    """
    chosen = settings(DistilConfig, "distillation", temperature=temperature, alpha=alpha,
                      steps=steps)
    run = RunDir(run_dir, readonly=True)
    config = run_config(run)
    if config.evaluator.tabular:
        raise ValueError(f"{run.path} is a tabular run: it trained no models, so there is no "
                         "ensemble to distil from")
    final = read_json(run.paths.final)
    members = member_dirs(run.path)
    if final is None or len(members) < 2:
        raise ValueError(
            f"{run.path} has no ensemble to distil from ({len(members)} retrained model"
            f"{'' if len(members) == 1 else 's'} kept in {BEST}/ and {ENSEMBLE}/); run it with "
            "final.retrain.top_k >= 2 (and final.retrain.ensemble: true)")
    with run.history as history:
        rows = {r["id"]: r for r in history.rows()}
    best_id = json.loads((run.paths.best / ARCHITECTURE).read_text())["history_id"]
    student_id = best_id if student is None else int(student)
    if student_id not in rows or rows[student_id]["failed"]:
        raise ValueError(f"student={student!r} is not an evaluated architecture of {run.path}; "
                         f"give a history id (the best is {best_id})")
    lock = RunLock(run.path)  # distilled/ is written into the run directory: own it meanwhile
    try:
        scorer, options = scorer_for(config)
        finish = Finish(config, run.path, list(rows.values()), scorer, options,
                        legacy_keys=run.fingerprint_version < 3)
        finish.summary["retrain_steps"] = final.get("retrain_steps")  # a timed retraining's
        loaded = [load_model(d, preprocess=False) for d in members]
        ids = [int(info["history_id"]) for _, _, info in loaded]
        # The student trains with the key its architecture was (or would be) retrained with.
        rank = ids.index(student_id) if student_id in ids else len(ids) + student_id
        alone = next((m["test_acc"] for m in final["models"] if m["id"] == student_id), None)
        key = finish.retrain_key(rows[student_id], jax.random.fold_in(finish.key, rank))
        summary = distil_ensemble(finish, [(m, v) for m, v, _ in loaded], ids, rows[student_id],
                                  alone, chosen, key)
    finally:
        lock.release()
    return summary


def read_distilled(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``distilled/distil.json`` of a run, or None."""
    return read_json(RunPaths(run_dir).distilled / DISTIL_FILE)
