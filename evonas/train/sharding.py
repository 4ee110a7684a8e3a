"""The population axis sharded over devices (a 1-D mesh named ``"pop"``): the local devices, or,
in a multi-process run (``evonas.experiment.distributed``), every process's devices."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class PopulationSharding:
    """Places population arrays split along their leading axis, data replicated.

    Args:
        devices: the devices to use (default: every local device). When they span several
            processes, every process passes the same host values and :meth:`gather` (a
            collective: every process calls it) brings results back to each.
    """

    def __init__(self, devices: list[Any] | None = None):
        self.devices = list(devices if devices is not None else jax.local_devices())
        self.mesh = Mesh(np.asarray(self.devices), ("pop",))
        self.population = NamedSharding(self.mesh, PartitionSpec("pop"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.global_ = any(d.process_index != jax.process_index() for d in self.devices)

    @property
    def count(self) -> int:
        """Number of devices: group sizes are padded to a multiple of it."""
        return len(self.devices)

    def _put(self, tree: Any, sharding: NamedSharding) -> Any:
        if self.global_:  # host values, the same on every process; each places its shards
            tree = jax.tree.map(np.asarray, tree)
        return jax.device_put(tree, sharding)

    def split(self, tree: Any) -> Any:
        """Every leaf sharded along its leading (individual) axis."""
        return self._put(tree, self.population)

    def replicate(self, tree: Any) -> Any:
        """Every leaf copied to every device (the dataset, the batch indices)."""
        return self._put(tree, self.replicated)

    def gather(self, tree: Any) -> Any:
        """Every leaf as a host (numpy) array of its global value."""
        if not self.global_:
            return jax.tree.map(np.asarray, tree)
        from jax.experimental import multihost_utils

        return jax.tree.map(np.asarray, multihost_utils.process_allgather(tree, tiled=True))
