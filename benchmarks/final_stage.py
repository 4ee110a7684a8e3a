"""After the search, measured: distil the ensemble, prune the best, export it for serving.

On a finished run (default: the default experiment, run here first into a temporary directory,
exactly as `evonas run` runs it on MNIST-1D), this

1. distils the final ensemble into the best architecture (``evonas distil``: the same
   initialisation, batches and steps as the best's own retraining, only the loss differs) and
   reports teacher, student alone and student distilled test accuracy;
2. prunes the best to half its parameters, structured (a smaller genome of the space) and
   unstructured (magnitude masks), each fine-tuned, with params, FLOPs, latency and test accuracy
   before and after;
3. exports the best as StableHLO (``evonas export``) and compares the deserialised program's
   logits with ``load_model``'s on the whole test set.

    python benchmarks/final_stage.py [--run-dir DIR] [--temperature 4] [--alpha 0.9]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", default=None,
                        help="a finished run (default: run the default experiment first)")
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.9)
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--prune-steps", type=int, default=None,
                        help="fine-tuning steps (default: a quarter of final.retrain.steps)")
    parser.add_argument("--set", action="append", default=[],
                        help="config overrides for the run made here (section.key=value)")
    args = parser.parse_args(argv)

    from evonas.data import load_dataset
    from evonas.experiment import Experiment, ExperimentConfig
    from evonas.experiment.components import build_model_parts
    from evonas.experiment.export import export_for_serving
    from evonas.experiment.finish import distil_run, prune_run
    from evonas.experiment.runner import run_config
    from evonas.store import RunDir, load_model, load_serving
    from evonas.train import predict_logits

    out: dict = {"benchmark": "final_stage"}
    tmp = None
    if args.run_dir is None:
        tmp = tempfile.TemporaryDirectory()
        run_dir = Path(tmp.name) / "default"
        config = ExperimentConfig.from_dict({}).with_overrides(["display.progress=false",
                                                             "train.compile_cache_dir=null",
                                                             *args.set])
        start = time.perf_counter()
        Experiment(config, run_dir=run_dir).run()
        out["run_s"] = round(time.perf_counter() - start, 1)
    else:
        run_dir = Path(args.run_dir)
    final = json.loads((run_dir / "best" / "final.json").read_text())
    out["final"] = {k: final.get(k) for k in ("retrain_steps", "best_test_acc",
                                              "ensemble_size", "ensemble_test_acc")}

    start = time.perf_counter()
    out["distillation"] = distil_run(run_dir, temperature=args.temperature, alpha=args.alpha)
    out["distillation"]["seconds"] = round(time.perf_counter() - start, 1)
    d = out["distillation"]
    print(f"teacher {d['teacher']['test_acc']:.4f}  alone {d['student']['alone_test_acc']:.4f}"
          f"  distilled {d['student']['distilled_test_acc']:.4f}", file=sys.stderr)

    out["pruning"] = {}
    for mode in ("unstructured", "structured"):  # structured last: it stays in pruned/
        start = time.perf_counter()
        result = prune_run(run_dir, mode=mode, sparsity=args.sparsity, steps=args.prune_steps)
        result["seconds"] = round(time.perf_counter() - start, 1)
        out["pruning"][mode] = result
        print(f"{mode}: params {result['before']['params']} -> {result['after']['params']} "
              f"(non-zero {result['after']['nonzero_params']}), test "
              f"{result['before']['test_acc']:.4f} -> {result['after']['test_acc']:.4f}",
              file=sys.stderr)

    start = time.perf_counter()
    path = export_for_serving(run_dir)
    export_s = time.perf_counter() - start
    config = run_config(RunDir(run_dir, readonly=True))
    dataset, _, _ = build_model_parts(config)
    module, variables, _ = load_model(run_dir, preprocess=False)
    want = predict_logits(module, variables, dataset.x_test)
    raw = load_dataset(config.dataset.name, val_fraction=config.dataset.val_fraction,
                       seed=config.dataset.seed, limit=config.dataset.limit, normalize=False)
    got = np.asarray(load_serving(path).call(raw.x_test))  # it standardises raw inputs itself
    out["serving"] = {"file_bytes": path.stat().st_size, "export_s": round(export_s, 2),
                      "test_examples": int(len(dataset.x_test)),
                      "max_abs_logit_difference": float(np.max(np.abs(got - want))),
                      "same_predictions": bool(np.all(got.argmax(-1) == want.argmax(-1)))}
    if tmp is not None:
        tmp.cleanup()
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
