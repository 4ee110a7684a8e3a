"""Warm starts on a shifted task: does a search that starts from an earlier one get as far in
half the search time?

The earlier search: the default experiment (regularized evolution over the ``conv`` space, 5
generations of 16, 200 steps each) on MNIST-1D. The shifted task: MNIST-1D generated again with
more noise (correlated noise 0.5 instead of 0.25, i.i.d. noise 0.1 instead of 0.02) and other
samples (generator seed 7), the same 40-step sequences and 10 classes. On it, for each seed:

* cold: the default experiment, ``--generations`` generations, from nothing;
* warm: the same with ``search.warm_start`` set to the earlier run, for a third of the
  generations (``--warm-generations``): its first population is the earlier run's 16 best
  architectures, evaluated again on the shifted data (nothing measured on the old data is
  copied), and the next generations evolve from them.

Each run's best by validation accuracy is retrained from scratch (the default final retraining,
top 1) and tested once on the shifted task's test split. Every run is cold for compiles (the
persistent cache off), so search seconds compare. The goal (issue 25): the warm search reaches
the cold search's retrained test accuracy (mean of the seeds) in at most half its search seconds.

    python benchmarks/warm_start.py            # about 25 minutes on a 2-core CPU, alone

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def shifted_mnist1d():
    """MNIST-1D with more noise and other samples, as an ``evonas.Dataset``."""
    from evonas.data import Dataset
    from evonas.data.mnist1d import _generate, _generation_args

    args = _generation_args()
    args.corr_noise_scale, args.iid_noise_scale, args.seed = 0.5, 0.1, 7
    arrays = _generate(args)
    return Dataset.from_arrays(arrays["x_train"][..., None], arrays["y_train"],
                               arrays["x_test"][..., None], arrays["y_test"], seed=0)


def _run(config, run_dir: Path, dataset=None) -> dict:
    from evonas.experiment import Experiment
    from evonas.store import History
    from evonas.store.atomic import read_json

    Experiment(config, run_dir=run_dir, dataset=dataset).run()
    with History(run_dir / "history.sqlite", readonly=True) as history:
        search_s = sum(g["wall_seconds"] for g in history.generations())
        ok = [r["fitness"] for r in history.rows() if not r["failed"] and r["fitness"] is not None]
    final = read_json(run_dir / "best" / "final.json") or {}
    return {"search_s": round(float(search_s), 1), "best_val": max(ok) if ok else None,
            "retrained_test": final.get("best_test_acc")}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=6,
                        help="the cold search's generations (the warm one runs a third)")
    parser.add_argument("--warm-generations", type=int, default=None,
                        help="the warm search's generations (default: a third of --generations)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every run (e.g. for a quick check)")
    args = parser.parse_args(argv)
    if args.generations < 2 or args.seeds < 1:
        parser.error("--generations must be at least 2 and --seeds at least 1")

    from evonas.experiment import ExperimentConfig

    base = ExperimentConfig.from_dict({}).with_overrides([
        "display.progress=false", "display.report=false", "train.compile_cache_dir=null",
        "final.retrain.top_k=1", *args.set])
    warm_generations = args.warm_generations or max(1, args.generations // 3)
    out: dict = {"benchmark": "warm_start", "generations": {"cold": args.generations,
                                                            "warm": warm_generations}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        earlier = _run(base.with_overrides(["final.retrain.top_k=0"]), tmp / "earlier")
        out["earlier"] = {**earlier, "seconds": round(time.perf_counter() - start, 1)}
        print(f"earlier search (MNIST-1D): {earlier}", flush=True)
        shifted = shifted_mnist1d()
        runs = {"cold": [], "warm": []}
        for seed in range(args.seeds):
            cold = base.with_overrides([f"search.seed={seed}",
                                        f"search.generations={args.generations}"])
            warm = cold.with_overrides([f"search.generations={warm_generations}",
                                        f"search.warm_start={json.dumps(str(tmp / 'earlier'))}"])
            for name, config in (("cold", cold), ("warm", warm)):
                result = _run(config, tmp / f"{name}-{seed}", shifted)
                runs[name].append(result)
                print(f"  {name} seed {seed}: {result}", flush=True)
    for name, results in runs.items():
        out[name] = {
            "search_s": [r["search_s"] for r in results],
            "retrained_test": [r["retrained_test"] for r in results],
            "best_val": [r["best_val"] for r in results],
            "mean_search_s": float(np.mean([r["search_s"] for r in results])),
            "mean_retrained_test": float(np.mean([r["retrained_test"] for r in results])),
        }
    out["warm_over_cold_seconds"] = out["warm"]["mean_search_s"] / out["cold"]["mean_search_s"]
    out["warm_minus_cold_test"] = (out["warm"]["mean_retrained_test"]
                                   - out["cold"]["mean_retrained_test"])
    out["goal_met"] = bool(out["warm_over_cold_seconds"] <= 0.5
                           and out["warm_minus_cold_test"] >= 0.0)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
