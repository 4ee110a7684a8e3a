"""Resident memory of a long run, generation by generation: does it level off?

A search of many generations of the default CNN space on a small slice of MNIST-1D (short
training, so that the run is about memory, not accuracy), printing the process's resident set
size after every generation. Compiled programs are the main thing a run accumulates: one per new
shape signature. The trainer's program cache keeps at most ``--max-programs`` of them (least
recently used first out), which is what levels the memory off.

    python benchmarks/memory_growth.py --generations 30

The last line printed is one JSON object: the RSS per generation and the growth over the last
third of the run against the first third (the baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """The current resident set size of this process, in MB (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--max-programs", type=int, default=None,
                        help="TrainConfig.max_programs (default: the trainer's default)")
    args = parser.parse_args(argv)
    from evonas.experiment import Experiment, ExperimentConfig
    from evonas.experiment.callbacks import Callback

    overrides = [f"search.generations={args.generations}",
                 f"search.population_size={args.population}",
                 f"strategy.params.population_size={args.population}",
                 f"train.steps={args.steps}", "dataset.limit=600", "train.batch_size=64",
                 "final.retrain.top_k=0", "display.progress=false", "display.report=false",
                 "train.compile_cache_dir=null"]
    if args.max_programs is not None:
        overrides.append(f"train.max_programs={args.max_programs}")
    config = ExperimentConfig().with_overrides(overrides)
    trace: list[float] = []

    class Memory(Callback):
        def on_generation(self, info):
            trace.append(round(rss_mb(), 1))
            print(f"generation {info.generation + 1}: {trace[-1]:.0f} MB, "
                  f"{info.trained} trained in {info.seconds:.1f} s", flush=True)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        Experiment(config, run_dir=Path(tmp) / "run", callbacks=[Memory()]).run()
    third = max(1, len(trace) // 3)
    first = trace[third - 1] - trace[0]
    last = trace[-1] - trace[-third]
    print(json.dumps({"benchmark": "memory_growth", "generations": len(trace),
                      "population": args.population, "rss_mb": trace,
                      "growth_first_third_mb": round(first, 1),
                      "growth_last_third_mb": round(last, 1),
                      "wall_s": round(time.perf_counter() - start, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
