"""Pruning the exported best (or distilled) network, with fine-tuning.

Two modes:

* ``structured``: the encoding's ``prune_channels`` hook removes the units / channels with the
  smallest norms and maps the network to a smaller genome of the same space (widths that are
  choices of the space), so the result is an ordinary evonas architecture with its analytic
  params, FLOPs and measured latency; it is then fine-tuned from the cut weights.
* ``unstructured``: magnitude pruning of every weight leaf to ``sparsity`` on a cubic schedule
  (``train.prune``) while fine-tuning; the architecture (and its dense FLOPs and latency) is
  unchanged, its non-zero parameters fall.

Both fine-tune on train + validation with the run's optimiser settings for ``steps`` and test on
the test split. ``pruned/`` holds the result as an exported model (``architecture.json``,
``params/``) and ``prune.json`` (written last): params, non-zero params, FLOPs, latency and test
accuracy before and after, side by side. Used by the final stage (``final.prune``) and by
``evonas prune DIR``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evonas.experiment.components import build_model_parts
from evonas.experiment.config import PRUNE_MODES, ExperimentConfig
from evonas.genomes._pruning import check_sparsity
from evonas.store import RunDir, atomic_write_text, export_model, load_model, read_json
from evonas.store.layout import ARCHITECTURE, PRUNE_FILE, RunPaths
from evonas.store.run_dir import RunLock
from evonas.train import accuracy, predict_logits, train_module
from evonas.train.prune import count_nonzero, count_params, cubic_schedule

_PRUNE_KEY = 5  # folded into the final stage's key: the fine-tuning's batch order


def prune_steps(config: ExperimentConfig, steps: int | None = None) -> int:
    """Fine-tuning steps: ``steps``, else a quarter of the run's ``final.retrain_steps``."""
    return steps or max(1, config.final.retrain_steps // 4)


def check_mode(mode: Any) -> str:
    if mode not in PRUNE_MODES:
        raise ValueError(f"prune mode={mode!r} is not allowed; choose one of {list(PRUNE_MODES)}")
    return mode


def _latency_ms(encoding: Any, genome: Any) -> float | None:
    from evonas.evaluators.latency import LatencyMeter

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


def prune_model(key: jax.Array, config: ExperimentConfig, encoding: Any, dataset: Any,
                genome: Any, variables: Any, mode: str, sparsity: float, steps: int
                ) -> tuple[np.ndarray, Any, dict[str, Any]]:
    """Prunes one trained network and fine-tunes it; returns ``(genome, variables, summary)``.

    Raises:
        ValueError: an unknown mode, a sparsity outside (0, 1), or ``structured`` on an encoding
            without a ``prune_channels`` hook (one line).
    """
    mode, sparsity = check_mode(mode), check_sparsity(sparsity)
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    batch = config.train.eval_batch_size
    genome = np.asarray(genome, np.int32)
    module, _ = encoding.build(genome)
    before = accuracy(predict_logits(module, variables, dataset.x_test, batch), dataset.y_test)
    if mode == "structured":
        hook = getattr(encoding, "prune_channels", None)
        if hook is None:
            raise ValueError(f"structured pruning needs the encoding {type(encoding).__name__} to "
                             "have a prune_channels(genome, variables, sparsity) hook; use "
                             "mode=unstructured")
        pruned_genome, cut = hook(genome, variables, sparsity)
        pruned_genome = np.asarray(pruned_genome, np.int32)
        pruned_module, _ = encoding.build(pruned_genome)
        _check_tree(pruned_module, cut, encoding)
        cut_acc = accuracy(predict_logits(pruned_module, cut, dataset.x_test, batch),
                           dataset.y_test)
        tuned = train_module(key, pruned_module, x, y, config.train, steps, init=cut)
    else:
        pruned_genome, pruned_module, cut_acc = genome, module, None
        tuned = train_module(key, module, x, y, config.train, steps, init=variables,
                             sparsity_schedule=cubic_schedule(sparsity, steps))
    after = accuracy(predict_logits(pruned_module, tuned, dataset.x_test, batch), dataset.y_test)
    summary = {
        "mode": mode, "sparsity": sparsity, "steps": int(steps),
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


def write_pruned(run_dir: Path, config: ExperimentConfig, encoding: Any,
                 encoding_options: dict[str, Any], source: dict[str, Any], genome: Any,
                 variables: Any, summary: dict[str, Any]) -> None:
    """Exports the pruned network to ``pruned/`` and writes ``prune.json`` last."""
    paths = RunPaths(run_dir)
    genome = np.asarray(genome, np.int32)
    after = summary["after"]
    row = {"genome": after["genome"], "description": encoding.describe(genome),
           "params": after["analytic_params"], "flops": after["flops"], "metrics": {},
           "id": source["history_id"], "fitness": None}
    export_model(paths.pruned, config.encoding.name, encoding_options, row, variables,
                 {"objective": config.search.objectives[0].name, "dataset": config.dataset.name,
                  "test_acc": after["test_acc"], "pruned_from": str(source["from"]),
                  "prune_mode": summary["mode"], "sparsity": summary["sparsity"]},
                 root=run_dir)
    atomic_write_text(paths.pruned / PRUNE_FILE, json.dumps(summary, indent=2) + "\n", run_dir)


def prune_run(run_dir: str | os.PathLike, mode: str = "structured", sparsity: float = 0.5,
              steps: int | None = None, source: str = "best") -> dict[str, Any]:
    """``evonas prune DIR``: prunes a finished run's exported best (or ``distilled``) network.

    Args:
        run_dir: a finished training run.
        mode: ``"structured"`` or ``"unstructured"``.
        sparsity: the share of parameters to remove, in (0, 1).
        steps: fine-tuning steps (default: a quarter of the run's ``final.retrain_steps``).
        source: ``"best"`` or ``"distilled"``: which exported model to prune.

    Returns:
        The contents of ``pruned/prune.json``.

    Raises:
        ValueError: not a finished training run, no such exported model, or a setting out of
            range (one line each; nothing is written).
    """
    from evonas.experiment.final import final_key
    from evonas.experiment.runner import run_config

    check_mode(mode)
    check_sparsity(sparsity)
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"prune steps={steps!r} is not allowed; give a positive integer")
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
    steps = prune_steps(config, steps)
    lock = RunLock(run.path)  # pruned/ is written into the run directory: own it meanwhile
    try:
        dataset, encoding, options = build_model_parts(config)
        _, variables, info = load_model(directory)
        key = jax.random.fold_in(final_key(config), _PRUNE_KEY)
        genome, tuned, summary = prune_model(key, config, encoding, dataset, info["genome"],
                                             variables, mode, sparsity, steps)
        write_pruned(run.path, config, encoding, options,
                     {"history_id": info["history_id"], "from": source}, genome, tuned, summary)
    finally:
        lock.release()
    return summary


def read_pruned(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """``pruned/prune.json`` of a run, or None."""
    return read_json(RunPaths(run_dir).pruned / PRUNE_FILE)
