"""``load_model``: the exported best architecture of a run as a standalone Flax module."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from evonas.experiment.final import ARCHITECTURE, PARAMS
from evonas.experiment.retrain import accuracy, predict_logits
from evonas.genomes import get_encoding


def _best_dir(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    best = path if (path / ARCHITECTURE).is_file() else path / "best"
    if not (best / ARCHITECTURE).is_file():
        raise ValueError(
            f"{os.fspath(run_dir)} holds no exported model (no best/{ARCHITECTURE}); pass a run "
            "directory whose run finished with final.retrain_top_k >= 1"
        )
    return best


def load_model(run_dir: str | os.PathLike) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuilds the best architecture of a run with ``encoding.build`` and loads its parameters.

    Args:
        run_dir: a run directory (or its ``best/`` directory).

    Returns:
        ``(module, variables, info)``: ``module.apply(variables, x)`` gives logits; ``info`` is
        ``architecture.json`` (genome, description, cost, fitness, test accuracy).

    Raises:
        ValueError: the directory holds no exported model.
    """
    best = _best_dir(run_dir)
    info = json.loads((best / ARCHITECTURE).read_text())
    options = dict(info["encoding_options"])
    if "input_shape" in options:
        options["input_shape"] = tuple(options["input_shape"])
    encoding = get_encoding(info["encoding"], **options)
    module, _ = encoding.build(np.asarray(info["genome"], np.int32))
    example = np.zeros((1, *options.get("input_shape", ())), np.float32)
    abstract = jax.eval_shape(module.init, jax.random.key(0), example)
    with ocp.StandardCheckpointer() as checkpointer:
        variables = checkpointer.restore((best / PARAMS).absolute(), abstract)
    return module, variables, info


def evaluate_model(run_dir: str | os.PathLike) -> float:
    """The test accuracy of the exported model on its run's dataset (as in ``final.json``)."""
    from evonas.data import load_dataset
    from evonas.experiment.config import ExperimentConfig

    module, variables, _ = load_model(run_dir)
    root = Path(run_dir)
    root = root.parent if (root / ARCHITECTURE).is_file() else root
    config = ExperimentConfig.from_yaml(root / "config.yaml")
    dataset = load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                           seed=config.dataset.seed, limit=config.dataset.limit)
    logits = predict_logits(module, variables, dataset.x_test, config.train.eval_batch_size)
    return accuracy(logits, dataset.y_test)
