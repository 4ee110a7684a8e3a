"""The NAS-Bench-201 table shipped with evonas: accuracies and hardware costs of all 15,625 cells.

Numbers from NAS-Bench-201 / NATS-Bench (Dong & Yang, ICLR 2020; Dong et al., TPAMI 2021) and
HW-NAS-Bench (Li et al., ICLR 2021), both MIT; see ``data/NOTICE``. The table holds the final
(200-epoch) test accuracies only, so a search that uses it as fitness is an *oracle tabular*
benchmark, not the paper's 12-epoch validation protocol.

:func:`load_table` gives the raw arrays in the benchmark's own index order; :func:`table` one
dataset as a generic :class:`~evonas.benchmarks.Table` (rows in genome-rank order), which is what
``evonas bench nb201``, the tabular evaluator and ``evonas run`` with a tabular evaluator use.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas.benchmarks.table import Table
from evonas.genomes.cell import OPS, CellEncoding

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet16")
DEVICES: tuple[str, ...] = ("edgegpu", "raspi4", "pixel3", "eyeriss", "fpga", "edgetpu")
"""Devices with a measured latency (edgetpu is NaN for about 30% of the architectures)."""
ENERGY_DEVICES: tuple[str, ...] = ("edgegpu", "eyeriss", "fpga")
"""Devices with a measured energy."""
NUM_ARCHS = len(OPS) ** 6
_SPACE = CellEncoding().space
# Mixed-radix place values of the six genes, first gene most significant.
_RADIX = len(OPS) ** np.arange(5, -1, -1)

DATASET_SHAPES: dict[str, dict[str, int]] = {
    "cifar10": {"num_classes": 10, "input_size": 32},
    "cifar100": {"num_classes": 100, "input_size": 32},
    "imagenet16": {"num_classes": 120, "input_size": 16},
}
"""The benchmark network's classifier width and input size on each dataset."""


def check_dataset(dataset: str) -> int:
    """The axis index of ``dataset`` (``ValueError`` listing the allowed names)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown NAS-Bench-201 dataset {dataset!r}; allowed: {list(DATASETS)}")
    return DATASETS.index(dataset)


def cost_names() -> list[str]:
    """The table's cost columns: ``DEVICE_latency`` (ms) and ``DEVICE_energy`` (mJ)."""
    return metric_names()[1:]


def metric_names() -> list[str]:
    """Every per-dataset metric: ``test_acc``, then ``DEVICE_latency`` and ``DEVICE_energy``."""
    return (
        ["test_acc"] + [f"{d}_latency" for d in DEVICES] + [f"{d}_energy" for d in ENERGY_DEVICES]
    )


def encoding_for(dataset: str) -> CellEncoding:
    """The cell encoding of the benchmark's network (C=16, N=5) on ``dataset``."""
    check_dataset(dataset)
    return CellEncoding(**DATASET_SHAPES[dataset])


def genome_code(genomes: jax.Array) -> jax.Array:
    """The mixed-radix code of each genome, ``int32[...]`` (first gene most significant)."""
    return jnp.asarray(genomes, jnp.int32) @ jnp.asarray(_RADIX, jnp.int32)


@dataclasses.dataclass(frozen=True, eq=False)
class NB201Table:
    """All 15,625 architectures of NAS-Bench-201, in the benchmark's index order.

    Attributes:
        genomes: ``int8[15625, 6]`` host array; row ``i`` is benchmark index ``i``.
        test_acc: ``float32[3, 15625]``, final test accuracy in percent, per dataset.
        latency: ``float32[3, 6, 15625]``, milliseconds, per dataset and device (:data:`DEVICES`),
            NaN where HW-NAS-Bench has no measurement.
        energy: ``float32[3, 3, 15625]``, millijoules, per dataset and :data:`ENERGY_DEVICES`.
        index_by_code: ``int32[5**6]`` device array: genome code -> benchmark index.
    """

    genomes: np.ndarray
    test_acc: np.ndarray
    latency: np.ndarray
    energy: np.ndarray
    index_by_code: jax.Array

    DATASETS = DATASETS
    DEVICES = DEVICES
    ENERGY_DEVICES = ENERGY_DEVICES

    def __len__(self) -> int:
        return len(self.genomes)

    def index_of(self, genome) -> int:
        """The benchmark index of one genome (host side, exact)."""
        genome = _SPACE.validate(genome)
        return int(self._host_index_by_code[int(genome @ _RADIX)])

    @functools.cached_property
    def _host_index_by_code(self) -> np.ndarray:
        return np.asarray(self.index_by_code)

    def genome_of(self, index: int) -> np.ndarray:
        """The genome ``int32[6]`` at a benchmark index (host side)."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"a NAS-Bench-201 index is an integer; got {index!r}")
        if not 0 <= index < len(self):
            raise ValueError(f"NAS-Bench-201 index {index} is outside 0..{len(self) - 1}")
        return self.genomes[int(index)].astype(np.int32)

    def indices(self, genomes: jax.Array) -> jax.Array:
        """Benchmark indices ``int32[...]`` of valid genomes ``int32[..., 6]`` (jit-able)."""
        return self.index_by_code[genome_code(genomes)]

    def column(self, dataset: str, metric: str) -> np.ndarray:
        """One metric on one dataset over all architectures, ``float32[15625]`` (host side).

        Args:
            dataset: one of :data:`DATASETS`.
            metric: one of :func:`metric_names` (``"test_acc"``, ``"edgegpu_latency"``,
                ``"fpga_energy"``, ...).
        """
        d = check_dataset(dataset)
        if metric == "test_acc":
            return self.test_acc[d]
        device, _, kind = metric.rpartition("_")
        if kind == "latency" and device in DEVICES:
            return self.latency[d, DEVICES.index(device)]
        if kind == "energy" and device in ENERGY_DEVICES:
            return self.energy[d, ENERGY_DEVICES.index(device)]
        raise ValueError(f"unknown NAS-Bench-201 metric {metric!r}; allowed: {metric_names()}")


@functools.lru_cache(maxsize=1)
def load_table() -> NB201Table:
    """Loads the vendored table from package data (once; later calls return the same object)."""
    data = importlib.resources.files("evonas.benchmarks").joinpath("data/nb201.npz")
    with data.open("rb") as f, np.load(f) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, names in (
        ("datasets", DATASETS),
        ("devices", DEVICES),
        ("energy_devices", ENERGY_DEVICES),
    ):
        if tuple(arrays[key].tolist()) != names:
            raise ValueError(f"nb201.npz has {key} {arrays[key].tolist()}; expected {list(names)}")
    genomes = arrays["genomes"]
    index_by_code = np.full(NUM_ARCHS, -1, np.int32)
    index_by_code[genomes.astype(np.int64) @ _RADIX] = np.arange(len(genomes), dtype=np.int32)
    if (index_by_code < 0).any():
        raise ValueError("nb201.npz does not hold every architecture of the space exactly once")
    return NB201Table(
        genomes=genomes,
        test_acc=arrays["test_acc"],
        latency=arrays["latency"],
        energy=arrays["energy"],
        index_by_code=jnp.asarray(index_by_code),
    )


def parse_index(text: str) -> np.ndarray | None:
    """A genome from its NAS-Bench-201 benchmark index (``"0"``; the benchmark's own order, not
    the genome's rank); ``None`` for text that is not an integer.

    Raises:
        ValueError: an index outside ``0 .. 15624``.
    """
    text = str(text).strip()
    if not text.lstrip("-").isdigit():
        return None
    index = int(text)
    if not 0 <= index < NUM_ARCHS:
        raise ValueError(f"NAS-Bench-201 index {index} is out of range; allowed 0..{NUM_ARCHS - 1}")
    return load_table().genome_of(index)


@functools.lru_cache(maxsize=len(DATASETS))
def table(dataset: str = "cifar10") -> Table:
    """One dataset of NAS-Bench-201 as a :class:`~evonas.benchmarks.Table`.

    Columns (rows in genome-rank order): ``test_acc`` (the fitness: an oracle protocol, the
    shared table has no validation accuracy), ``DEVICE_latency`` and ``DEVICE_energy`` (costs).

    Args:
        dataset: ``"cifar10"``, ``"cifar100"`` or ``"imagenet16"`` (ImageNet16-120).
    """
    check_dataset(dataset)
    raw = load_table()
    by_rank = raw._host_index_by_code  # genome rank (= the mixed-radix code) -> benchmark index
    columns: dict[str, Any] = {name: raw.column(dataset, name)[by_rank] for name in metric_names()}
    return Table(
        name="nb201", encoding=encoding_for(dataset), columns=columns, fitness="test_acc",
        maximize=True, costs=tuple(cost_names()), parse=parse_index,
        protocol="oracle tabular",
    )
