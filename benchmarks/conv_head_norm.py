"""What the ``conv`` encoding's fixed choices cost or gain on real images: the head (global
average pooling or a dense layer on the flattened last map) and the normalisation (none, or a
per-example layer norm of every conv).

One architecture (by default the one ``fashion_mnist.py`` found in
``benchmarks/results/fashion_mnist-cpu-60min-3.json``: stem 16, conv3 16, conv5 64, dwsep5 16
with a residual, dwsep5 64, conv3 96, reductions after layers 1 and 3) is built by the encoding
with each variant and trained the same way: ``--steps`` AdamW steps (cosine schedule, weight
decay 1e-4) of batch 128 drawn from Fashion-MNIST's 60,000 training images with random crops
and flips, then tested on the official 10,000. Same seeds for every variant.

    python benchmarks/conv_head_norm.py                 # about 25 minutes alone on 2 cores

The last line printed is one JSON object: per variant the test accuracy, parameters and
milliseconds per step.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"gap": {}, "gap+layer_norm": {"norm": "layer"}, "flatten": {"head": "flatten"}}


def train_and_test(options: dict, genome: np.ndarray, data: tuple, steps: int,
                   learning_rate: float, batch: int = 128) -> dict:
    import jax
    import jax.numpy as jnp
    import optax

    from evonas.genomes import get_encoding
    from evonas.train.augment import Augment, augment

    x, y, x_test, y_test = data
    module, _ = get_encoding("conv", **options).build(genome)
    params = module.init(jax.random.key(0), x[:2])
    tx = optax.adamw(optax.cosine_decay_schedule(learning_rate, steps), weight_decay=1e-4)
    state = tx.init(params)
    spec = Augment(crop=2, flip=True)
    xs, ys = jnp.asarray(x), jnp.asarray(y)

    @jax.jit
    def step(params, state, key):
        k_batch, k_aug = jax.random.split(key)
        idx = jax.random.randint(k_batch, (batch,), 0, xs.shape[0])
        xb, yb = augment(k_aug, xs[idx], spec), ys[idx]

        def loss(p):
            logits = module.apply(p, xb)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    key = jax.random.key(1)
    start = time.perf_counter()
    for _ in range(steps):
        key, k = jax.random.split(key)
        params, state, value = step(params, state, k)
    jax.block_until_ready(value)
    seconds = time.perf_counter() - start
    apply = jax.jit(module.apply)
    pred = np.concatenate([np.asarray(apply(params, x_test[i:i + 1000])).argmax(-1)
                           for i in range(0, len(x_test), 1000)])
    return {"test_acc": round(float((pred == y_test).mean()), 4),
            "params": int(sum(np.size(a) for a in jax.tree.leaves(params))),
            "ms_per_step": round(1000 * seconds / steps, 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--genome", default=None, help="comma-separated; default: the one "
                        "fashion_mnist.py found in its third run")
    parser.add_argument("--limit", type=int, default=None,
                        help="training images, and as many test images (smoke tests)")
    args = parser.parse_args(argv)

    from evonas.data.doors import load_fashion_mnist

    raw = load_fashion_mnist()
    scale = 255.0 if np.asarray(raw.x_train).max() > 2 else 1.0
    x = np.asarray(raw.x_train, np.float32).reshape(-1, 28, 28, 1) / scale
    x_test = np.asarray(raw.x_test, np.float32).reshape(-1, 28, 28, 1) / scale
    mean, std = x.mean(), x.std()
    x, x_test = (x - mean) / std, (x_test - mean) / std
    y, y_test = np.asarray(raw.y_train), np.asarray(raw.y_test)
    if args.limit:
        x, y = x[:args.limit], y[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    if args.genome:
        genome = np.asarray([int(g) for g in args.genome.split(",")], np.int32)
    else:
        found = ROOT / "benchmarks" / "results" / "fashion_mnist-cpu-60min-3.json"
        genome = np.asarray(json.loads(found.read_text().strip().splitlines()[-1])
                            ["evonas"]["genome"], np.int32)
    space = yaml.safe_load((ROOT / "examples" / "fashion_mnist.yaml").read_text())["encoding"]
    base = {k: v for k, v in space["options"].items() if k not in ("head", "norm")}
    base.update(input_shape=(28, 28, 1), num_classes=10)
    out = {"benchmark": "conv_head_norm", "steps": args.steps, "genome": genome.tolist(),
           "variants": {}}
    for name in args.variants:
        out["variants"][name] = train_and_test({**base, **VARIANTS[name]}, genome,
                                               (x, y, x_test, y_test), args.steps,
                                               args.learning_rate)
        print(name, out["variants"][name], flush=True)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
