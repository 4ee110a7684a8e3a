"""Vendors the NAS-Bench-201 table into the package: ``evonas/benchmarks/data/nb201.npz``.

Reads the compact CSV (one row per architecture of NAS-Bench-201 / NATS-Bench "tss", in the
benchmark's index order, with HW-NAS-Bench's latencies and energies) and writes, compressed:

* ``genomes``: ``int8[15625, 6]``, the op index (``evonas.genomes.cell.OPS``) on each edge
  ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``; row ``i`` is benchmark index ``i``.
* ``test_acc``: ``float32[3, 15625]``, test accuracy in percent (datasets in ``datasets``).
* ``latency``: ``float32[3, 6, 15625]``, milliseconds (devices in ``devices``); NaN where
  HW-NAS-Bench has no measurement (edgetpu, for some architectures).
* ``energy``: ``float32[3, 3, 15625]``, millijoules (devices in ``energy_devices``).
* ``datasets``, ``devices``, ``energy_devices``: the names of those axes.

Usage: ``python tools/vendor_nb201.py [CSV] [NPZ]``. The script checks that the arch string
rebuilt from every genome equals the CSV's and that every index is present once.
"""

from __future__ import annotations

import csv
import pathlib
import sys

import numpy as np

from evonas.genomes.cell import CellEncoding

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_CSV = ROOT.parent / "shared" / "data" / "nas-bench-201" / "nb201.csv"
DEFAULT_NPZ = ROOT / "evonas" / "benchmarks" / "data" / "nb201.npz"
DATASETS = ("cifar10", "cifar100", "imagenet16")
DEVICES = ("edgegpu", "raspi4", "pixel3", "eyeriss", "fpga", "edgetpu")
ENERGY_DEVICES = ("edgegpu", "eyeriss", "fpga")
NUM_ARCHS = 15625


def _column(rows: list[dict[str, str]], name: str) -> np.ndarray:
    """A float32 column; an empty cell becomes NaN."""
    return np.asarray([float(r[name]) if r[name] != "" else np.nan for r in rows], np.float32)


def vendor(csv_path: pathlib.Path, npz_path: pathlib.Path) -> dict[str, np.ndarray]:
    """Reads ``csv_path``, checks it, writes ``npz_path`` and returns the arrays written."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != NUM_ARCHS:
        raise ValueError(f"{csv_path} has {len(rows)} rows; NAS-Bench-201 has {NUM_ARCHS}")
    indices = np.asarray([int(r["arch_idx"]) for r in rows])
    if not np.array_equal(indices, np.arange(NUM_ARCHS)):
        raise ValueError(f"{csv_path} is not in benchmark index order 0..{NUM_ARCHS - 1}")
    encoding = CellEncoding()
    genomes = np.stack([encoding.from_arch_str(r["arch_str"]) for r in rows]).astype(np.int8)
    for r, genome in zip(rows, genomes):
        rebuilt = encoding.to_arch_str(genome)
        assert rebuilt == r["arch_str"], (r["arch_idx"], rebuilt, r["arch_str"])
    codes = genomes.astype(np.int64) @ (5 ** np.arange(5, -1, -1))
    assert len(np.unique(codes)) == NUM_ARCHS, "two rows hold the same architecture string"
    arrays = {
        "genomes": genomes,
        "test_acc": np.stack([_column(rows, f"test_acc_{d}") for d in DATASETS]),
        "latency": np.stack(
            [np.stack([_column(rows, f"{d}_{v}_latency") for v in DEVICES]) for d in DATASETS]
        ),
        "energy": np.stack(
            [np.stack([_column(rows, f"{d}_{v}_energy") for v in ENERGY_DEVICES]) for d in DATASETS]
        ),
        "datasets": np.asarray(DATASETS),
        "devices": np.asarray(DEVICES),
        "energy_devices": np.asarray(ENERGY_DEVICES),
    }
    assert not np.isnan(arrays["test_acc"]).any() and not np.isnan(arrays["energy"]).any()
    assert not np.isnan(arrays["latency"][:, :-1]).any(), "only edgetpu may lack latencies"
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **arrays)
    return arrays


def main(argv: list[str]) -> None:
    csv_path = pathlib.Path(argv[1]) if len(argv) > 1 else DEFAULT_CSV
    npz_path = pathlib.Path(argv[2]) if len(argv) > 2 else DEFAULT_NPZ
    arrays = vendor(csv_path, npz_path)
    missing = int(np.isnan(arrays["latency"]).sum())
    print(f"wrote {npz_path} ({npz_path.stat().st_size} bytes); {missing} NaN latencies (edgetpu)")


if __name__ == "__main__":
    main(sys.argv)
