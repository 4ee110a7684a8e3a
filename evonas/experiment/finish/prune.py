"""The ``prune`` step: pruning of the deployed network (the distilled one with ``final.distil``,
else the best), with fine-tuning, for ``final.prune`` and ``evonas prune``.

Two modes:

* ``structured``: the encoding's ``prune_channels`` hook removes the units / channels with the
  smallest norms and maps the network to a smaller genome of the same space (widths that are
  choices of the space), so the result is an ordinary evonas architecture with its analytic
  params, FLOPs and measured latency; it is then fine-tuned from the cut weights.
* ``unstructured``: magnitude pruning of every weight leaf to ``sparsity`` on a cubic schedule
  (``train.prune``) while fine-tuning; the architecture (and its dense FLOPs and latency) is
  unchanged, its non-zero parameters fall.

Both fine-tune on train + validation with the run's optimiser settings and test on the test
split. ``pruned/`` holds the result as an exported model (``architecture.json``, ``params/``) and
``prune.json`` (written last): params, non-zero params, FLOPs, latency and test accuracy before
and after, side by side.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np

from evonas import streams
from evonas.evaluators.latency import LatencyMeter
from evonas.experiment.config import PruneConfig
from evonas.experiment.finish.context import (
    Finish,
    scorer_for,
    settings,
    trained_test_accuracy,
)
from evonas.experiment.loading import run_config
from evonas.store import RunDir, load_model, read_json
from evonas.store.layout import ARCHITECTURE, PRUNE_FILE, RunPaths
from evonas.store.run_dir import RunLock
from evonas.train import train_module
from evonas.train.prune import count_nonzero, count_params, cubic_schedule


class Prune:
    """The deployed network pruned and fine-tuned (``final.prune``)."""

    name = "prune"

    def wanted(self, finish: Finish) -> bool:
        return (finish.config.final.prune is not None and finish.scorer.trains
                and bool(finish.members))

    def run(self, finish: Finish) -> None:
        best = finish.members[0]
        source, params = "best", best.params
        if "distillation" in finish.summary:
            source = "distilled"
            _, params, _ = load_model(finish.paths.distilled, preprocess=False)
        finish.summary["pruning"] = prune_and_export(finish, best.row["id"], source,
                                                     best.row["genome"], params,
                                                     finish.config.final.prune)


def fine_tuning_steps(finish: Finish, settings: PruneConfig) -> int:
    """Fine-tuning steps: the setting's, else a quarter of the best's retraining steps
    (``final.retrain.steps``, or what a ``time_budget`` gave it)."""
    return settings.steps or max(1, finish.retrain_steps // 4)


def _latency_ms(encoding: Any, genome: Any) -> float | None:
    try:
        return float(LatencyMeter(encoding, repeats=20)(genome))
    except ValueError:  # an encoding without an input shape: nothing to time
        return None


def _side(encoding: Any, genome: Any, variables: Any, test_acc: float) -> dict[str, Any]:
    cost = encoding.cost(np.asarray(genome, np.int32))
    return {"genome": [int(g) for g in np.asarray(genome).tolist()],
            "params": count_params(variables), "nonzero_params": count_nonzero(variables),
            "analytic_params": float(cost["params"]), "flops": float(cost["flops"]),
            "latency_ms": _latency_ms(encoding, genome), "test_acc": float(test_acc)}


def prune_model(finish: Finish, genome: Any, variables: Any, settings: PruneConfig
                ) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Prunes one trained network and fine-tunes it; returns ``(genome, variables, summary)``.

    Raises:
        ValueError: ``structured`` on an encoding without a ``prune_channels`` hook (one line).
    """
    encoding, dataset, config = finish.encoding, finish.dataset, finish.config
    steps = fine_tuning_steps(finish, settings)
    key = streams.within_final(finish.key, "prune")
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    genome = np.asarray(genome, np.int32)
    module, _ = encoding.build(genome)
    before = trained_test_accuracy(finish, module, variables)
    if settings.mode == "structured":
        hook = getattr(encoding, "prune_channels", None)
        if hook is None:
            raise ValueError(f"structured pruning needs the encoding {type(encoding).__name__} to "
                             "have a prune_channels(genome, variables, sparsity) hook; use "
                             "mode=unstructured")
        pruned_genome, cut = hook(genome, variables, settings.sparsity)
        pruned_genome = np.asarray(pruned_genome, np.int32)
        pruned_module, _ = encoding.build(pruned_genome)
        _check_tree(pruned_module, cut, encoding)
        cut_acc = trained_test_accuracy(finish, pruned_module, cut)
        tuned = train_module(key, pruned_module, x, y, config.train, steps, init=cut)
    else:
        pruned_genome, pruned_module, cut_acc = genome, module, None
        tuned = train_module(key, module, x, y, config.train, steps, init=variables,
                             sparsity_schedule=cubic_schedule(settings.sparsity, steps))
    after = trained_test_accuracy(finish, pruned_module, tuned)
    summary = {
        "mode": settings.mode, "sparsity": settings.sparsity, "steps": int(steps),
        "before": _side(encoding, genome, variables, before),
        "after": _side(encoding, pruned_genome, tuned, after),
        "after_cut_test_acc": cut_acc,
    }
    return pruned_genome, tuned, summary


def _check_tree(module: Any, variables: Any, encoding: Any) -> None:
    """The hook's variables must be the smaller genome's standalone tree, leaf for leaf."""
    example = np.zeros((1, *getattr(encoding, "input_shape", ())), np.float32)
    want = jax.eval_shape(module.init, jax.random.key(0), example)
    got = jax.tree.map(np.shape, variables)
    if jax.tree.structure(want) != jax.tree.structure(variables) or jax.tree.leaves(
            jax.tree.map(lambda a: a.shape, want)) != jax.tree.leaves(got):
        raise ValueError(f"{type(encoding).__name__}.prune_channels returned variables that are "
                         "not its smaller genome's standalone tree")


def prune_and_export(finish: Finish, history_id: int, source: str, genome: Any,
                     variables: Any, settings: PruneConfig) -> dict[str, Any]:
    """Prunes, fine-tunes and exports to ``pruned/`` (``prune.json`` written last); returns
    ``prune.json``'s contents."""
    genome, tuned, summary = prune_model(finish, genome, variables, settings)
    after = summary["after"]
    row = {"genome": after["genome"], "description": finish.encoding.describe(genome),
           "params": after["analytic_params"], "flops": after["flops"], "metrics": {},
           "id": history_id, "fitness": None}
    finish.export(finish.paths.pruned, row, tuned,
                  {"test_acc": after["test_acc"], "pruned_from": str(source),
                   "prune_mode": summary["mode"], "sparsity": summary["sparsity"]})
    finish.write_json(finish.paths.pruned / PRUNE_FILE, summary)
    return summary


def prune_run(run_dir: str | os.PathLike, mode: str | None = None,
              sparsity: float | None = None, steps: int | None = None,
              source: str = "best") -> dict[str, Any]:
    """``evonas prune DIR``: prunes a finished run's exported best (or ``distilled``) network.

    Args:
        run_dir: a finished training run.
        mode, sparsity, steps: as :class:`~evonas.experiment.config.PruneConfig` (its defaults
            where None).
        source: ``"best"`` or ``"distilled"``: which exported model to prune.

    Returns:
        The contents of ``pruned/prune.json``.

    Raises:
        ValueError: not a finished training run, no such exported model, or a setting out of
            range (one line each; nothing is written).
    """
    chosen = settings(PruneConfig, "prune", mode=mode, sparsity=sparsity, steps=steps)
    if source not in ("best", "distilled"):
        raise ValueError(f"source={source!r} is not allowed; choose 'best' or 'distilled'")
    run = RunDir(run_dir, readonly=True)
    config = run_config(run)
    if config.evaluator.tabular:
        raise ValueError(f"{run.path} is a tabular run: it trained no network to prune")
    directory = RunPaths(run.path).best if source == "best" else RunPaths(run.path).distilled
    if not (directory / ARCHITECTURE).is_file():
        raise ValueError(f"{run.path} has no exported {source} model to prune ({directory} is "
                         "missing); finish the run first" + (", or run `evonas distil`" if
                                                             source == "distilled" else ""))
    lock = RunLock(run.path)  # pruned/ is written into the run directory: own it meanwhile
    try:
        scorer, options = scorer_for(config)
        finish = Finish(config, run.path, [], scorer, options)
        final = read_json(run.paths.final) or {}
        finish.summary["retrain_steps"] = final.get("retrain_steps")  # a timed retraining's
        _, variables, info = load_model(directory, preprocess=False)
        summary = prune_and_export(finish, info["history_id"], source, info["genome"],
                                   variables, chosen)
    finally:
        lock.release()
    return summary


def read_pruned(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``pruned/prune.json`` of a run, or None."""
    return read_json(RunPaths(run_dir).pruned / PRUNE_FILE)
