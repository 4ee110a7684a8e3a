"""The population axis sharded over all local devices (a 1-D mesh named ``"pop"``)."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class PopulationSharding:
    """Places population arrays split along their leading axis, data replicated.

    Args:
        devices: the devices to use (default: every local device).
    """

    def __init__(self, devices: list[Any] | None = None):
        self.devices = list(devices if devices is not None else jax.local_devices())
        self.mesh = Mesh(np.asarray(self.devices), ("pop",))
        self.population = NamedSharding(self.mesh, PartitionSpec("pop"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())

    @property
    def count(self) -> int:
        """Number of devices: group sizes are padded to a multiple of it."""
        return len(self.devices)

    def split(self, tree: Any) -> Any:
        """Every leaf sharded along its leading (individual) axis."""
        return jax.device_put(tree, self.population)

    def replicate(self, tree: Any) -> Any:
        """Every leaf copied to every device (the dataset, the batch indices)."""
        return jax.device_put(tree, self.replicated)
