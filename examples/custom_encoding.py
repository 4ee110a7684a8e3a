"""A user's own encoding: a stack of MobileNetV2 inverted-residual blocks, registered as "mobile".

An encoding needs a ``space``, a readable ``describe`` and an analytic, jit-able ``cost``; that is
enough for every strategy to search it (add ``decode``/``supernet``/``build`` to train it).

    python examples/custom_encoding.py
"""

import jax.numpy as jnp

import evonas

EXPANSIONS, KERNELS, WIDTHS = (1, 3, 6), (3, 5, 7), (16, 24, 32, 48, 64)


class MobileEncoding:
    name = "mobile"

    def __init__(self, num_blocks: int = 4, in_channels: int = 16, resolution: int = 16,
                 num_classes: int = 10):
        self.num_blocks, self.in_channels = num_blocks, in_channels
        self.resolution, self.num_classes = resolution, num_classes
        genes = {}
        for i in range(num_blocks):
            genes |= {f"expand_{i}": EXPANSIONS, f"kernel_{i}": KERNELS, f"width_{i}": WIDTHS}
        self.space = evonas.GenomeSpace.from_genes(genes)

    def describe(self, genome) -> dict:
        genes = self.space.to_dict(genome)
        blocks = [{k: genes[f"{k}_{i}"] for k in ("expand", "kernel", "width")}
                  for i in range(self.num_blocks)]
        return {"blocks": blocks, **{k: int(v) for k, v in self.cost(genome).items()}}

    def cost(self, genome) -> dict:
        g = jnp.asarray(genome).reshape(self.num_blocks, 3)
        e, k = jnp.asarray(EXPANSIONS)[g[:, 0]], jnp.asarray(KERNELS)[g[:, 1]]
        c_out = jnp.asarray(WIDTHS)[g[:, 2]]
        c_in = jnp.concatenate([jnp.asarray([self.in_channels]), c_out[:-1]])
        hidden = c_in * e
        # 1x1 expand, kxk depthwise, 1x1 project; then the linear classifier.
        per_pixel = c_in * hidden + hidden * k * k + hidden * c_out
        head = c_out[-1] * self.num_classes
        return {"params": jnp.sum(per_pixel) + head,
                "flops": jnp.sum(per_pixel) * self.resolution**2 + head}


evonas.register_encoding("mobile", MobileEncoding, overwrite=True)

if __name__ == "__main__":
    import jax

    encoding = evonas.get_encoding("mobile")
    genome = encoding.space.sample(jax.random.key(0), 1)[0]
    print(encoding.describe(genome))
