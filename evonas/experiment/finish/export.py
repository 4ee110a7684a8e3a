"""The ``export`` step: the best architecture exported to ``best/`` with its scores, and
``best/final.json`` written last: its presence means the final stage is complete (a resumed run
skips it)."""

from __future__ import annotations

import os
from pathlib import Path

from evonas.data import load_dataset
from evonas.experiment.config import ExperimentConfig
from evonas.experiment.finish.context import Finish
from evonas.store import RunPaths, load_model
from evonas.store.layout import ARCHITECTURE
from evonas.train import accuracy, predict_logits


class Export:
    """Exports the best (rank 1) and writes ``final.json`` (every step's summary)."""

    name = "export"

    def wanted(self, finish: Finish) -> bool:
        return bool(finish.members)

    def run(self, finish: Finish) -> None:
        best = finish.members[0]
        finish.export(finish.paths.best, best.row, best.params, best.scores)
        finish.write_json(finish.paths.final, finish.summary)


def evaluate_model(run_dir: str | os.PathLike) -> float:
    """The test accuracy of a run's exported model on its run's dataset (as in ``final.json``)."""
    module, variables, _ = load_model(run_dir, preprocess=False)
    root = Path(run_dir)
    root = root.parent if (root / ARCHITECTURE).is_file() else root
    config = ExperimentConfig.from_yaml(RunPaths(root).config, plugins=False)
    dataset = load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                           seed=config.dataset.seed, limit=config.dataset.limit)
    logits = predict_logits(module, variables, dataset.x_test, config.train.eval_batch_size)
    return accuracy(logits, dataset.y_test)
