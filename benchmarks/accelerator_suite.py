"""The accelerator suite: evonas's numbers on whatever device JAX sees, in one JSON file.

Runs, each in its own process and with its own time limit:

1. ``throughput.py``: every plan and the one-jit-per-architecture baseline at ``--population``
   (default 256) x ``--steps`` (default 300), with the PyTorch eager peer where torch imports;
   its JSON holds each plan's useful-FLOP share of the device's measured matmul peak
   (``useful_peak_fraction``; the masked plan's is the headline).
2. ``nb201_search.py``: whole tabular searches in one jit (``--nb201-runs`` x ``--nb201-budget``).
3. A short ``evonas run`` of the default experiment (``--run-generations`` generations), timed
   end to end.

It writes ``--out`` (default ``benchmarks/results/accelerator-<platform>.json``) and prints the
same JSON as its last line. On a GPU or TPU the defaults take about 5 to 8 minutes. On a CPU the
masked plan at 256 individuals takes hours, so there the defaults shrink to a population of 16,
60 steps and ``grouped,auto`` plus a 4 x 20 masked run (``--full`` keeps the GPU sizes);
the JSON records the sizes it ran.

Usage: ``python benchmarks/accelerator_suite.py [--population 256] [--steps 300] [--full]
[--out FILE] [--skip throughput,nb201,run]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("throughput", "nb201", "run")


def _log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def _device() -> dict:
    import jax

    d = jax.devices()[0]
    return {"platform": d.platform, "kind": getattr(d, "device_kind", d.platform),
            "count": jax.device_count(), "jax": jax.__version__}


def _last_json(cmd: list[str], timeout: float) -> tuple[dict | None, float, str]:
    """Runs ``cmd``; its last stdout line as JSON (None if it failed), seconds, stderr tail."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, time.perf_counter() - start, f"timed out after {timeout:g} s"
    seconds = time.perf_counter() - start
    if proc.returncode:
        return None, seconds, proc.stderr[-1500:]
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), seconds, proc.stderr[-600:]
    except (IndexError, json.JSONDecodeError):
        return None, seconds, "no JSON line: " + proc.stdout[-300:]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--full", action="store_true",
                        help="on a CPU too, the accelerator sizes (hours for the masked plan)")
    parser.add_argument("--nb201-runs", type=int, default=100)
    parser.add_argument("--nb201-budget", type=int, default=300)
    parser.add_argument("--run-generations", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds each part may take (default 300)")
    parser.add_argument("--skip", default="", help="comma-separated parts to leave out: "
                        + ",".join(PARTS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(PARTS)
    if unknown:
        parser.error(f"--skip: unknown part {sorted(unknown)[0]!r}; allowed: {', '.join(PARTS)}")

    device = _device()
    cpu = device["platform"] == "cpu" and not args.full
    population = args.population or (16 if cpu else 256)
    steps = args.steps or (60 if cpu else 300)
    py = sys.executable
    out: dict = {"benchmark": "accelerator_suite", "device": device,
                 "population": population, "steps": steps, "reduced_for_cpu": cpu}
    began = time.perf_counter()
    if "throughput" not in skip:
        cmd = [py, "benchmarks/throughput.py", "--population", str(population), "--steps",
               str(steps), "--peer", "torch"]
        if cpu:  # the masked plan separately, at a size a CPU finishes
            masked, s, err = _last_json([py, "benchmarks/throughput.py", "--population", "4",
                                         "--steps", "20", "--plans", "masked", "--no-baseline"],
                                        args.timeout)
            out["masked_small"] = masked if masked else {"error": err}
            cmd += ["--plans", "grouped,auto"]
        result, seconds, err = _last_json(cmd, args.timeout)
        out["throughput"] = result if result else {"error": err}
        out["throughput_s"] = round(seconds, 1)
        _log(f"throughput: {seconds:.0f} s")
    if "nb201" not in skip:
        result, seconds, err = _last_json(
            [py, "benchmarks/nb201_search.py", "--runs", str(args.nb201_runs), "--budget",
             str(args.nb201_budget)], args.timeout)
        out["nb201"] = ({"wall_s": round(seconds, 1), **{k: result[k] for k in result
                                                           if k not in ("results",)}}
                        if result else {"error": err})
        _log(f"nb201: {seconds:.0f} s")
    if "run" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [py, "-m", "evonas.cli", "run", "--run-dir", os.path.join(tmp, "run"),
                   "--set", f"search.generations={args.run_generations}",
                   "--set", "display.progress=false", "--set", "display.report=false"]
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                                  timeout=args.timeout)
            seconds = time.perf_counter() - start
            lines = proc.stdout.strip().splitlines()
            out["run"] = {"wall_s": round(seconds, 1), "generations": args.run_generations,
                          "ok": proc.returncode == 0,
                          "summary": [ln for ln in lines if ln.startswith(("search:", "best:"))]}
            if proc.returncode:
                out["run"]["error"] = proc.stderr[-800:]
        _log(f"run: {seconds:.0f} s")
    out["total_s"] = round(time.perf_counter() - began, 1)
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / (
        f"accelerator-{device['platform']}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
