"""A toy tabular benchmark: 120 architectures with a validation accuracy (the fitness), a test
accuracy (report only) and a measured latency (a cost).

It registers itself on import *and* is listed under the entry-point groups in pyproject.toml,
the way many plug-ins do; evonas must take both at once.
"""

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

import evonas

DEPTHS, WIDTHS, KERNELS, NORMS = (1, 2, 3, 4), (8, 16, 32), (1, 3, 5, 7, 9), ("none", "batch")


@dataclasses.dataclass(frozen=True)
class ToyEncoding:
    """Four genes: depth, width, kernel and normalisation of a toy 1-D CNN."""

    num_classes: int = 10
    name = "toytable"

    @functools.cached_property
    def space(self):
        return evonas.GenomeSpace.from_genes(
            {"depth": DEPTHS, "width": WIDTHS, "kernel": KERNELS, "norm": NORMS})

    def describe(self, genome):
        genes = self.space.to_dict(genome)
        return {"layers": [{"op": f"conv{genes['kernel']}", "width": genes["width"]}
                           for _ in range(genes["depth"])], "norm": genes["norm"]}

    def cost(self, genome):
        g = jnp.asarray(genome, jnp.int32)
        depth = jnp.asarray(DEPTHS, jnp.float32)[g[..., 0]]
        width = jnp.asarray(WIDTHS, jnp.float32)[g[..., 1]]
        kernel = jnp.asarray(KERNELS, jnp.float32)[g[..., 2]]
        params = depth * kernel * width * width + width * self.num_classes
        return {"params": params, "flops": 40.0 * params}


def _columns(encoding):
    """Deterministic synthetic measurements of every architecture, in genome-rank order."""
    space = encoding.space
    genomes = np.stack([space.from_index(r) for r in range(space.size)]).astype(np.float64)
    rng = np.random.default_rng(0)
    skill = 60 + 6 * genomes[:, 0] + 4 * genomes[:, 1] + 2 * genomes[:, 2] + 3 * genomes[:, 3]
    val = skill + rng.normal(0, 1.0, space.size)
    test = skill + rng.normal(0, 1.0, space.size)
    latency = 0.2 * (genomes[:, 0] + 1) * (genomes[:, 1] + 1) * (genomes[:, 2] + 1)
    return {"val_acc": val, "test_acc": test, "cpu_latency": latency}


def toy_table(num_classes: int = 10):
    """The benchmark: ``val_acc`` searched, ``test_acc`` reported, ``cpu_latency`` a cost."""
    encoding = ToyEncoding(num_classes)
    return evonas.Table(name="toytable", encoding=encoding, columns=_columns(encoding),
                        fitness="val_acc", report=("test_acc",), costs=("cpu_latency",))


evonas.register_encoding("toytable", ToyEncoding)
evonas.register_benchmark("toytable", toy_table)
