"""The ``retrain`` and ``ensemble`` steps: the top k retrained on train + validation and tested
(or read from the table), and their ensemble (the averaged logits), whose other members are kept
in ``ensemble/<rank>/`` for ``evonas distil``."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import jax
import numpy as np

from evonas.experiment.finish.context import Finish, Member, Retrainer, TimedRetrainer, top_k
from evonas.store import RunDir, read_json
from evonas.store.run_dir import RunLock
from evonas.train import accuracy

MAX_STEPS = 10**9
"""``retrain_run(seconds=)``'s step limit when no ``steps`` is given: the clock's alone."""


class Retrain:
    """Scores the top ``final.retrain.top_k`` by search fitness, best first."""

    name = "retrain"

    def wanted(self, finish: Finish) -> bool:
        return finish.config.final.retrain.top_k > 0

    def run(self, finish: Finish) -> None:
        config = finish.config
        maximize = config.search.objectives[0].maximize
        chosen = top_k(finish.rows, config.final.retrain.top_k, maximize)
        steps, seconds = config.final.retrain.steps, config.final.retrain.time_budget
        timed = None
        if seconds is not None and isinstance(finish.scorer, Retrainer):
            timed = TimedRetrainer(config, finish.scorer.encoding, finish.scorer.dataset,
                                   float(seconds), len(chosen), steps)
            finish.summary["retrain_seconds"] = float(seconds)
        for rank, row in enumerate(chosen):
            if finish.scorer.trains:
                finish.progress(f"retraining {rank + 1} of {len(chosen)}, the best by search "
                                "fitness" + (f", {seconds:g} s for all" if timed else ""))
            legacy = jax.random.fold_in(finish.key, rank)
            params, scores, logits = (finish.score(row, steps, legacy) if timed is None else
                                      timed(finish.retrain_key(row, legacy), row, steps))
            finish.members.append(Member(rank + 1, row, params, scores, logits))
        models = [{"rank": m.rank, "id": m.row["id"], "genome": m.row["genome"],
                   "fitness": m.row["fitness"], "params": m.row["params"], **m.scores}
                  for m in finish.members]
        if not models:
            return
        if finish.scorer.trains:  # a timed retraining's steps are each model's own
            finish.summary.update(retrain_steps=models[0].get("steps", steps), models=models,
                                  best_test_acc=models[0]["test_acc"])
        else:
            table = finish.scorer.table
            finish.summary.update(protocol=table.protocol, benchmark=table.name, models=models,
                                  **{f"best_{k}": v for k, v in finish.members[0].scores.items()})


class Ensemble:
    """The retrained models' averaged logits on the test split; the members other than the best
    exported to ``ensemble/<rank>/``."""

    name = "ensemble"

    def wanted(self, finish: Finish) -> bool:
        return (finish.config.final.retrain.ensemble and finish.scorer.trains
                and len(finish.members) >= 2)

    def run(self, finish: Finish) -> None:
        members = finish.members
        finish.summary["ensemble_size"] = len(members)
        finish.summary["ensemble_test_acc"] = accuracy(
            np.mean([m.logits for m in members], axis=0), finish.dataset.y_test)
        for m in members[1:]:
            finish.export(finish.paths.ensemble / str(m.rank), m.row, m.params,
                          {"test_acc": m.scores["test_acc"]}, {"rank": m.rank})


def retrain_run(run_dir: str | os.PathLike, *, top_k: int = 3, steps: int | None = None,
                ensemble: bool = True, dataset: Any = None, seconds: float | None = None
                ) -> dict[str, Any] | None:
    """The final stage's retraining, ensemble and export on a finished search, with settings
    chosen after it (``search_classifier`` gives it the seconds its budget has left):
    ``best/``, ``ensemble/`` and ``best/final.json`` as a run with ``final.retrain`` set
    writes them. ``final.json`` records the steps used.

    Args:
        run_dir: a run directory whose search is done.
        top_k: how many of the best by search fitness to retrain (>= 1).
        steps: retraining steps each (default ``final.retrain.steps``); with ``seconds``,
            the most steps each (default: no limit but the clock).
        ensemble: also their ensemble (needs ``top_k >= 2``).
        dataset: the data of a run on data given in Python.
        seconds: a wall-clock budget for the retraining of all ``top_k`` together (testing
            and export are extra: seconds): each trains for an equal share of what is left by
            :func:`~evonas.train.train_for_seconds`, its schedule stretched over the steps that
            fit. The steps then depend on the machine's speed; ``final.json`` records each
            model's (``models[i].steps``, the best's as ``retrain_steps``) and the budget
            (``retrain_seconds``).

    Raises:
        ValueError: a tabular run, no evaluated architecture, or settings out of range.

    With ``seconds`` this is ``final.retrain.time_budget``.
    """
    from evonas.experiment.components import build_model_parts
    from evonas.experiment.finish import STEPS
    from evonas.experiment.loading import run_config

    run = RunDir(run_dir, readonly=True)
    config = run_config(run)
    if config.evaluator.tabular:
        raise ValueError(f"{run.path} is a tabular run: nothing to retrain (its final stage "
                         "reads the table)")
    if seconds is not None and not (isinstance(seconds, (int, float)) and seconds > 0
                                    and math.isfinite(seconds)):
        raise ValueError(f"retrain_run: seconds must be a number above 0 or None; got "
                         f"{seconds!r}")
    retrain = dataclasses.replace(
        config.final.retrain, top_k=int(top_k), ensemble=bool(ensemble),
        steps=int(steps or (config.final.retrain.steps if seconds is None else MAX_STEPS)),
        time_budget=None if seconds is None else float(seconds))
    config = dataclasses.replace(config, final=dataclasses.replace(config.final,
                                                                   retrain=retrain))
    with run.history as history:
        rows = history.rows()
    lock = RunLock(run.path)  # best/ and ensemble/ are written into the run: own it meanwhile
    try:
        data, encoding, options = build_model_parts(config, dataset)
        finish = Finish(config, run.path, rows, Retrainer(config, encoding, data), options,
                        legacy_keys=run.fingerprint_version < 3)
        for name in ("retrain", "ensemble", "export"):
            if STEPS[name].wanted(finish):
                STEPS[name].run(finish)
    finally:
        lock.release()
    return read_json(run.paths.final)
