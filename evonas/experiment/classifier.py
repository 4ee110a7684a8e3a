"""``search_classifier``: one call for people who only have arrays (as AutoKeras users have).

``evonas.search_classifier(x, y, time_budget="30m")`` looks at the data, picks a search space and
a way to evaluate architectures that fit the budget, prints and stores those choices, searches
until its share of the budget is spent, retrains the best few on train + validation with what
is left, and returns a :class:`Classifier` (``predict``, ``predict_proba``, ``export``, its run
directory). The choices are rules written down here, not a search of their own:

- images ``[H, W, C]`` of at least 8 pixels a side: the ``conv`` encoding with 2x reductions
  down to about 7 pixels, the image pipeline on (crop with 2 pixels of padding; no flip, which
  would confuse digits and text); sequences ``[L, C]``: the 1-D ``conv`` encoding; feature
  vectors: the ``mlp`` encoding;
- training steps per architecture about one pass over the train split (at least 100, at most
  600); successive halving (a third of the steps first) when that pass is long for the budget;
- the search stops at 60 % of the budget; what is left retrains the top 3 (their ensemble is
  the classifier's ``predict_proba``), the number of steps set from the seconds per step the
  search measured.

Time budgets make a run depend on the machine: the choices, the steps and the seconds are in
``classifier.json`` of the run directory, so a result can be reproduced with them as a config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from evonas.data import Dataset
from evonas.experiment.config import ExperimentConfig
from evonas.experiment.finish import retrain_run
from evonas.experiment.runner import Experiment
from evonas.store import RunDir, atomic_write_text, load_model
from evonas.store.layout import RunPaths

SEARCH_SHARE = 0.6  # of the time budget; the rest retrains the best
TOP_K = 3
MAX_STEPS = 20_000  # each retrained model's, whatever time is left
CLASSIFIER_FILE = "classifier.json"


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"1.5h"``.

    Raises:
        ValueError: naming the value and the forms allowed.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
        if not match:
            raise ValueError(f"time_budget {value!r} must be seconds or a duration such as "
                             "'90s', '30m' or '1.5h'")
        seconds = float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    if not math.isfinite(seconds) or seconds < 30:
        raise ValueError(f"time_budget {value!r} is under 30 seconds; a search and a retraining "
                         "need more")
    return seconds


def choose(dataset: Dataset, seconds: float) -> dict[str, Any]:
    """The search space, evaluation and training the data and the budget call for."""
    shape = dataset.input_shape
    n = len(dataset.y_train)
    batch = int(min(128, max(16, n // 20)))
    steps = int(min(600, max(100, n // batch)))
    spatial = shape[:-1]
    if len(shape) == 3 and min(spatial) >= 8:
        reductions = max(0, int(math.floor(math.log2(min(spatial) / 7))))
        layers = 2 * reductions + 2
        encoding = {"name": "conv", "options": {
            "max_layers": layers, "widths": [16, 32, 64],
            "ops": ["conv3", "conv5", "dwsep5", "maxpool3", "identity"],
            "reductions": [2 * i + 1 for i in range(reductions)], "stem_width": 16}}
        augment: dict[str, Any] | None = {"crop": 2 if min(spatial) >= 16 else 1}
        kind = f"images {list(shape)}: conv, {reductions} reduction(s), crop augmentation"
    elif len(shape) == 2 and shape[0] >= 8:
        encoding = {"name": "conv", "options": {"max_layers": 4, "widths": [16, 32, 48],
                                                "ops": ["conv3", "conv5", "conv7", "maxpool3",
                                                        "identity"]}}
        augment = None
        kind = f"sequences {list(shape)}: 1-D conv"
    else:
        encoding = {"name": "mlp", "options": {"max_layers": 3, "widths": [32, 64, 128, 256]}}
        augment = None
        kind = f"vectors of {math.prod(shape)} features: mlp"
    evaluator: dict[str, Any] = {}
    # About 25 architectures in the search share is the least a search needs; halving trains
    # every architecture a third of the steps first when full training would allow fewer.
    halving = seconds * SEARCH_SHARE < 25 * steps * 0.02
    if halving:
        evaluator["halving"] = {"rungs": [max(1, steps // 3)], "eta": 3}
    return {"data": kind, "encoding": encoding, "evaluator": evaluator,
            "train": {"steps": steps, "batch_size": batch, "augment": augment},
            "search": {"population_size": 8, "time_budget": round(seconds * SEARCH_SHARE, 1)},
            "method": "successive halving" if halving else "full training"}


@dataclasses.dataclass
class Classifier:
    """The retrained best of a search and its ensemble.

    Attributes:
        run_dir: the run directory (history, report, ``best/``, ``ensemble/``).
        class_names: the label of each class, in the order of ``predict_proba``'s columns.
        choices: what :func:`search_classifier` chose and measured.
        test_accuracy: the best's test accuracy (the split given, or one carved from the data).
        ensemble_test_accuracy: the ensemble's (None with one model).
    """

    run_dir: Path
    class_names: list[str]
    choices: dict[str, Any]
    test_accuracy: float
    ensemble_test_accuracy: float | None
    _models: list[tuple[Any, Any]] = dataclasses.field(default_factory=list, repr=False)

    @classmethod
    def load(cls, run_dir: str | Path) -> Classifier:
        """The classifier a :func:`search_classifier` run left in ``run_dir``."""
        run_dir = Path(run_dir)
        paths = RunPaths(run_dir)
        final = json.loads(paths.final.read_text())
        module, variables, info = load_model(run_dir)
        models = [(module, variables)]
        if paths.ensemble.is_dir():
            for member in sorted(p for p in paths.ensemble.iterdir() if p.is_dir()):
                m, v, _ = load_model(member)
                models.append((m, v))
        choices = json.loads((run_dir / CLASSIFIER_FILE).read_text()) if (
            run_dir / CLASSIFIER_FILE).is_file() else {}
        return cls(run_dir, list(info.get("class_names") or []), choices,
                   float(final["best_test_acc"]), final.get("ensemble_test_acc"), models)

    def predict_proba(self, x: Any, ensemble: bool = True, batch_size: int = 1000) -> np.ndarray:
        """Class probabilities ``[N, K]`` for ``x`` in its own units (as given to the search);
        the mean of the ensemble's when ``ensemble``, else the best's alone."""
        import jax

        members = self._models if ensemble else self._models[:1]
        x = self._batch(np.asarray(x))
        out = 0.0
        for module, variables in members:
            apply = jax.jit(module.apply)
            parts = [np.asarray(jax.nn.softmax(apply(variables, x[i:i + batch_size])))
                     for i in range(0, len(x), batch_size)]
            out = out + np.concatenate(parts)
        return np.asarray(out / len(members))

    def predict(self, x: Any, ensemble: bool = True) -> np.ndarray:
        """The predicted labels of ``x`` (the class names as they were given)."""
        index = self.predict_proba(x, ensemble).argmax(axis=-1)
        names = np.asarray(self.class_names)
        return names[index] if len(names) else index

    def export(self, platforms: tuple[str, ...] = ("cpu", "cuda")) -> Path:
        """The best as a StableHLO program (``best/model.stablehlo``), served with only JAX."""
        from evonas.experiment.export import export_for_serving

        return export_for_serving(self.run_dir, list(platforms))

    def _batch(self, x: np.ndarray) -> np.ndarray:
        """``x`` as a batch of the model's input shape: one example gets a batch axis, grey
        images without a channel axis get one.

        Raises:
            ValueError: ``x`` is not of the shape the classifier was searched on.
        """
        info = json.loads((RunPaths(self.run_dir).best / "architecture.json").read_text())
        shape = tuple(info["encoding_options"]["input_shape"])
        if x.shape[1:] == shape:
            return x
        if x.shape == shape:
            return x[None]
        if shape[-1] == 1 and x.shape[1:] == shape[:-1]:
            return x[..., None]
        if shape[-1] == 1 and x.shape == shape[:-1]:
            return x[None, ..., None]
        raise ValueError(f"x has shape {x.shape}; this classifier takes examples of shape "
                         f"{list(shape)} (a batch, or one example)")


def search_classifier(x: Any, y: Any, x_test: Any = None, y_test: Any = None, *,
                      time_budget: Any = "30m", run_dir: str | Path | None = None,
                      seed: int = 0, class_names: Any = None,
                      progress: bool = True) -> Classifier:
    """Searches a classifier for ``(x, y)`` within ``time_budget`` and returns it retrained.

    Args:
        x, y: the data: features ``[N, F]``, sequences ``[N, L, C]`` or images ``[N, H, W(, C)]``
            (``uint8`` pixels are fine); labels of any type.
        x_test, y_test: a test split (default: 20 % carved from the data, stratified).
        time_budget: seconds or ``"30m"``: the search stops at 60 % of it, the retraining takes
            the rest.
        run_dir: where the run lives (default ``runs/classifier-<time>``).
        seed: the search's seed.
        class_names: names of labels ``0..K-1`` (default: the labels themselves).
        progress: print the choices and the search's progress.

    Raises:
        ValueError: bad data or budget (one line, before anything is created).
    """
    seconds = parse_duration(time_budget)
    start = time.perf_counter()
    dataset = Dataset.from_arrays(x, y, x_test, y_test, class_names=class_names)
    chosen = choose(dataset, seconds)
    config = ExperimentConfig.from_dict({
        "encoding": chosen["encoding"], "evaluator": chosen["evaluator"],
        "train": chosen["train"],
        "search": {**chosen["search"], "generations": None, "seed": int(seed)},
        "final": {"retrain": {"top_k": 0}},
        "display": {"progress": progress, "report": True},
    })
    directory = Path(run_dir) if run_dir is not None else Path("runs") / (
        f"classifier-{time.strftime('%Y%m%d-%H%M%S')}")
    if progress:
        print(f"search_classifier: {chosen['data']}; {chosen['method']}, "
              f"{chosen['train']['steps']} steps per architecture; search "
              f"{chosen['search']['time_budget']:.0f} s of {seconds:.0f} s", flush=True)
    result = Experiment(config, run_dir=directory, dataset=dataset).run()
    left = max(0.0, seconds - (time.perf_counter() - start))
    # The retraining reads the clock (``train_for_seconds``): what is left, less a margin for
    # the compiles, the ensemble's evaluation and the export.
    retrain_seconds = round(max(5.0, 0.85 * left), 1)
    record = {**chosen, "retrain_seconds": retrain_seconds, "max_retrain_steps": MAX_STEPS,
              "time_budget_s": seconds, "top_k": TOP_K}
    atomic_write_text(result.run_dir / CLASSIFIER_FILE, json.dumps(record, indent=2) + "\n",
                      result.run_dir)
    if progress:
        print(f"search_classifier: retraining the top {TOP_K} for {retrain_seconds:.0f} s "
              f"together ({left:.0f} s left)", flush=True)
    retrain_run(result.run_dir, top_k=TOP_K, steps=MAX_STEPS, dataset=dataset,
                seconds=retrain_seconds)
    RunDir(result.run_dir, readonly=True)  # a clear error if it is not a run directory
    return Classifier.load(result.run_dir)
