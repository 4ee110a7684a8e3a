"""Every name in a run directory, and nowhere else.

Layout::

    <run-dir>/
      config.yaml         the fully resolved config, every default written out
      run.json            evonas version and the experiment's fingerprint; written last by create
      .evonas.lock        the owning process's lock and PID
      dataset.json        the data searched: sizes, class names, preprocessing, content digest
      history.sqlite      every evaluated architecture (see History)
      checkpoints/        the search state after each generation, the last few kept
      metrics.jsonl       one JSON line per generation (progress, for other tools)
      tensorboard/        TensorBoard scalars, when display.tensorboard
      best/               the exported best architecture: architecture.json, params/, final.json,
                          and (`evonas export`) model.stablehlo with serving.json
      ensemble/           the final ensemble's other members: <rank>/ each (rank 2, 3, ...)
      distilled/          the ensemble distilled into one network (`final.distil`, `evonas distil`)
      pruned/             the deployed network pruned and fine-tuned (`final.prune`, `evonas prune`)
      finetuned/          `evonas finetune`: <mode>/ each, a found network fine-tuned on new data
      front/              a multi-objective run's retrained front: <id>/ each, front.json
      budgets/            `evonas front --budget`: <metric>-<bound>/ each, budgets.json
      report/             plots and index.html
      weights/            weight inheritance: each trained architecture's parameters, by genome key
      supernet/           the one-shot evaluator's trained supernet
      warm_start.json     what a warm-started run took from the earlier run (search.warm_start)
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

CONFIG = "config.yaml"
RUN_INFO = "run.json"
LOCK = ".evonas.lock"  # the owner's OS-level lock (store.run_dir.RunLock)
HISTORY = "history.sqlite"
CHECKPOINTS = "checkpoints"
DATASET_INFO = "dataset.json"  # the data a run searched: sizes, class names, digest, preprocessing
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
BEST = "best"
FRONT = "front"
BUDGETS = "budgets"
REPORT = "report"
WEIGHTS = "weights"
SUPERNET = "supernet"
ENSEMBLE = "ensemble"
DISTILLED = "distilled"
PRUNED = "pruned"
FINETUNED = "finetuned"
WARM_START = "warm_start.json"  # the earlier run's genomes and distribution, as first read

# Inside an exported model's directory (best/, front/<id>/, budgets/<metric>-<bound>/).
ARCHITECTURE = "architecture.json"
PARAMS = "params"
# Written last by the stage that owns the directory: its presence means the stage is complete.
FINAL = "final.json"
FRONT_FILE = "front.json"
BUDGETS_FILE = "budgets.json"
REPORT_INDEX = "index.html"
DISTIL_FILE = "distil.json"
PRUNE_FILE = "prune.json"
FINETUNE_FILE = "finetune.json"
# Export for serving, inside an exported model's directory.
SERVING = "model.stablehlo"
SERVING_INFO = "serving.json"

SUBDIRS = (CHECKPOINTS, BEST, REPORT)
"""Created with the run directory."""


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """The paths of one run directory (nothing is opened or created)."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    config = property(lambda self: self.root / CONFIG)
    run_info = property(lambda self: self.root / RUN_INFO)
    dataset_info = property(lambda self: self.root / DATASET_INFO)
    history = property(lambda self: self.root / HISTORY)
    checkpoints = property(lambda self: self.root / CHECKPOINTS)
    metrics = property(lambda self: self.root / METRICS)
    tensorboard = property(lambda self: self.root / TENSORBOARD)
    best = property(lambda self: self.root / BEST)
    final = property(lambda self: self.root / BEST / FINAL)
    front = property(lambda self: self.root / FRONT)
    front_file = property(lambda self: self.root / FRONT / FRONT_FILE)
    budgets = property(lambda self: self.root / BUDGETS)
    report = property(lambda self: self.root / REPORT)
    weights = property(lambda self: self.root / WEIGHTS)
    supernet = property(lambda self: self.root / SUPERNET)
    ensemble = property(lambda self: self.root / ENSEMBLE)
    distilled = property(lambda self: self.root / DISTILLED)
    pruned = property(lambda self: self.root / PRUNED)
    finetuned = property(lambda self: self.root / FINETUNED)
    warm_start = property(lambda self: self.root / WARM_START)
    report_index = property(lambda self: self.root / REPORT / REPORT_INDEX)
