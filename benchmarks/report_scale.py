"""How long `evonas report` takes on a large history: a synthetic run of N evaluations.

The history is written through the store (one transaction per generation), with conv-encoding
genomes and descriptions, a two-objective config (accuracy against parameters) and lineage, then
the report is written and timed; the baseline in the same run is reading the history alone.

    python benchmarks/report_scale.py --rows 100000

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_run(root: Path, rows: int, per_generation: int, seed: int = 0) -> Path:
    """A run directory holding ``rows`` evaluations of the default conv space."""
    from evonas.experiment import ExperimentConfig
    from evonas.genomes import get_encoding
    from evonas.store import RunDir, genome_key

    config = ExperimentConfig().with_overrides([
        "strategy.name=nsga2", "search.objectives=[{name: val_acc}, {name: params}]"])
    run = RunDir.create(root, config.to_dict(), config.fingerprint(), fingerprint_version=2)
    encoding = get_encoding("conv", **config.encoding.options)
    rng = np.random.default_rng(seed)
    genomes = rng.integers(0, np.asarray(encoding.space.cardinalities), size=(rows, 20))
    descriptions = {}
    with run:
        for g, start in enumerate(range(0, rows, per_generation)):
            batch = []
            for i in range(start, min(rows, start + per_generation)):
                key = genome_key(genomes[i])
                if key not in descriptions:
                    descriptions[key] = encoding.describe(genomes[i])
                params = float(descriptions[key]["params"] if "params" in descriptions[key]
                               else 1000 + i)
                batch.append({
                    "id": i, "genome": genomes[i].tolist(), "genome_key": key,
                    "description": descriptions[key], "fitness": float(rng.uniform(0.1, 0.99)),
                    "val_acc": float(rng.uniform(0.1, 0.99)), "params": params,
                    "flops": params * 40, "metrics": {}, "failed": bool(rng.random() < 0.02),
                    "parents": [int(rng.integers(0, max(i, 1)))] if i else [],
                })
            run.history.append_generation(g, batch, {"best": None, "median": None,
                                                     "worst": None, "wall_seconds": 0.0})
    return root


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--per-generation", type=int, default=100)
    args = parser.parse_args(argv)
    from evonas.report import read_evaluations, write_report

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        run = synthetic_run(Path(tmp) / "run", args.rows, args.per_generation)
        built = time.perf_counter() - start
        start = time.perf_counter()
        evaluations = read_evaluations(run)
        read = time.perf_counter() - start
        start = time.perf_counter()
        paths = write_report(run)
        report = time.perf_counter() - start
        size = paths["html"].stat().st_size
    print(f"history of {len(evaluations)} rows written in {built:.1f} s; read in {read:.2f} s; "
          f"report in {report:.2f} s ({size / 1e6:.1f} MB page)")
    print(json.dumps({"benchmark": "report_scale", "rows": len(evaluations),
                      "generations": -(-args.rows // args.per_generation),
                      "read_s": round(read, 3), "report_s": round(report, 3),
                      "baseline": "read_evaluations alone", "html_mb": round(size / 1e6, 2)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
