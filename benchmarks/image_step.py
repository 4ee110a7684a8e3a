"""What two kernel choices gain in a training step on a CPU.

First, which ops XLA:CPU hands to the YNNPACK library: this jaxlib's default (dots and
convolutions) against dots only, convolutions in XLA's own kernels
(``evonas.train.config._LIBRARY_OPTIONS``, what ``TrainConfig.xla="fast"`` sets). The same
jitted AdamW step (the trainer's loss; crops and flips on images) is timed both ways in
alternating rounds in one process, so drift on a shared machine hits both alike, on the
hand-designed CNN of ``fashion_mnist.py`` and the architecture its fourth run found (both
Fashion-MNIST, 28x28) and on a 1-D CNN of the ``conv`` space on MNIST-1D (40 positions).

Second, a 5x5 depthwise convolution computed as slices of one padded input against the
per-axis padding evonas used before (same numbers), forward and forward + backward; and the
training steps of two searched networks with evonas's depthwise gradient against JAX's, and with
the 2x downsample as a select against a ``max`` reduction (``--only-downsample``: that alone).

    python benchmarks/image_step.py           # about 5 minutes alone on 2 cores
    python benchmarks/image_step.py --search  # and one generation of a Fashion-MNIST search,
                                              # both ways in fresh processes (+10 minutes)

The last line printed is one JSON object: per network the median milliseconds per step with
each choice, their ratio and the first compile's seconds; per depthwise shape the milliseconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

# fashion_mnist.py's fourth run (benchmarks/results/fashion_mnist-cpu-60min-4.json)
RUN4 = [0, 3, 2, 2, 0, 1, 0, 0, 2, 1, 1, 1, 2, 2, 0, 1, 2, 1, 0, 1, 1, 2, 2, 0, 0, 1, 4, 3, 0, 0]
# the best of the fifth run's search (stopped before its retraining), with its 64-unit hidden head
RUN5 = [0, 3, 2, 2, 1, 1, 0, 0, 2, 0, 1, 0, 2, 2, 0, 1, 2, 1, 0, 1, 1, 2, 2, 0, 0, 1, 4, 3, 0, 0]


def networks(smoke: bool) -> dict:
    """name -> (Flax module, train x, train y, image augmentation or None)."""
    from fashion_mnist import HandCNN, cnn_space

    from evonas.data import load_dataset
    from evonas.genomes import get_encoding
    from evonas.train.augment import Augment

    out = {}
    limit = 512 if smoke else 8192
    fashion = load_dataset("fashion_mnist")
    x, y = fashion.x_train[:limit], fashion.y_train[:limit]
    options = {**cnn_space()["options"], "input_shape": x.shape[1:], "num_classes": 10}
    run4, _ = get_encoding("conv", **options).build(np.asarray(RUN4, np.int32))
    run5, _ = get_encoding("conv", **{**options, "head_hidden": 64}).build(
        np.asarray(RUN5, np.int32))
    pipeline = Augment(crop=2, flip=True)
    out["hand_cnn_fashion"] = (HandCNN.module(), x, y, pipeline)
    out["run4_fashion"] = (run4, x, y, pipeline)
    out["run5_fashion"] = (run5, x, y, pipeline)
    mnist1d = load_dataset("mnist1d")
    encoding = get_encoding("conv", input_shape=mnist1d.x_train.shape[1:], num_classes=10)
    import jax

    # the throughput benchmark's kind of network: random genomes of the default 1-D space
    genomes = np.asarray(encoding.space.sample(jax.random.key(0), 8))
    genome = max(genomes, key=lambda g: float(encoding.cost(g)["flops"]))  # the largest of 8
    module, _ = encoding.build(genome)
    out["conv1d_mnist1d"] = (module, mnist1d.x_train[:limit], mnist1d.y_train[:limit], None)
    return out


def step_program(module, x, y, pipeline, options, config=None):
    """The standalone trainer's step (``train_module`` compiles its own on every call, so its
    steps can't be timed apart from the compile), jitted with ``options``; ``config``: the
    ``TrainConfig`` whose optimiser it uses (default: AdamW at 3e-3, decay 1e-4)."""
    import dataclasses

    import jax

    from evonas.train import TrainConfig
    from evonas.train.augment import augment
    from evonas.train.step import cross_entropy, descent_step

    config = (TrainConfig(learning_rate=3e-3, weight_decay=1e-4, augment=pipeline)
              if config is None else config)
    config = dataclasses.replace(config, steps=10_000)
    optimizer = config.program_options().optimizer_fn()

    def loss(params, xb, yb, _):
        return cross_entropy(module.apply(params, xb), yb)

    def step(params, opt_state, idx, t):
        xb = x[idx]
        if pipeline is not None:
            xb = augment(jax.random.fold_in(jax.random.key(1), t), xb, pipeline)
        _, _, params, opt_state = descent_step(optimizer, loss, params, opt_state, xb, y[idx],
                                               None)
        return params, opt_state

    params = module.init(jax.random.key(0), x[:1])
    return jax.jit(step, compiler_options=options), params, optimizer.init(params)


def depthwise_per_axis(x, kernel):
    """The depthwise convolution as evonas computed it before: each spatial axis padded in turn
    and its taps sliced (the baseline of :func:`depthwise_layers`)."""
    from evonas.genomes._layers import _shifted

    nd = kernel.ndim - 2
    taps = [x]
    for axis in range(1, nd + 1):
        taps = [w for t in taps for w in _shifted(t, axis, kernel.shape[axis - 1], 0.0)]
    weights = kernel.reshape(-1, kernel.shape[-1])
    out = taps[0] * weights[0]
    for t, w in zip(taps[1:], weights[1:]):
        out = out + t * w
    return out


def alternate(runs: dict, rounds: int, steps: int, batch: int, n: int) -> None:
    """Times each run's jitted step (``run["fun"]``, from :func:`step_program`) in alternating
    rounds of ``steps`` steps (the order reversed every other round, so neither choice always
    runs on a warmer machine), appending ms per step to ``run["ms"]``."""
    import jax
    import jax.numpy as jnp

    order = tuple(runs)
    for r in range(rounds):
        for choice in order if r % 2 == 0 else order[::-1]:
            run = runs[choice]
            start = time.perf_counter()
            for t in range(steps):
                idx = (jnp.arange(batch) + batch * t) % n
                run["params"], run["state"] = run["fun"](run["params"], run["state"], idx, t)
            jax.block_until_ready(run["params"])
            run["ms"].append((time.perf_counter() - start) / steps * 1e3)


def depthwise_layers(rounds: int, steps: int, smoke: bool = False) -> dict:
    """One 5x5 depthwise layer (batch 128), forward and forward + backward, under the trainer's
    step options: the per-axis baseline, the one-pad shifted sum differentiated by JAX
    (``autodiff``) and ``evonas.genomes._layers.depthwise_conv`` (the same sum with its own
    gradient: the flipped sum and a grouped convolution)."""
    import jax
    import jax.numpy as jnp

    from evonas.genomes._layers import _depthwise_taps, depthwise_conv
    from evonas.train.config import compiler_options

    options = compiler_options("train_chunk", "fast")
    out = {}
    batch = 8 if smoke else 128
    for shape in ((batch, 28, 28, 32), (batch, 14, 14, 64)):
        x = jax.random.normal(jax.random.key(0), shape)
        w = jax.random.normal(jax.random.key(1), (5, 5, 1, shape[-1]))
        row, grads = {}, {}
        for name, fn in (("per_axis", depthwise_per_axis), ("one_pad_autodiff", _depthwise_taps),
                         ("one_pad", depthwise_conv)):
            forward = jax.jit(fn, compiler_options=options)
            both = jax.jit(jax.grad(lambda x, w, fn=fn: jnp.sum(jnp.tanh(fn(x, w))), (0, 1)),
                           compiler_options=options)
            grads[name] = both(x, w)
            timings = {}
            for part, fun in (("forward", forward), ("forward_backward", both)):
                jax.block_until_ready(fun(x, w))
                ms = []
                for _ in range(rounds):
                    start = time.perf_counter()
                    for _ in range(steps):
                        result = fun(x, w)
                    jax.block_until_ready(result)
                    ms.append((time.perf_counter() - start) / steps * 1e3)
                timings[part + "_ms"] = round(float(np.median(ms)), 2)
            row[name] = timings
        same = bool(jnp.array_equal(depthwise_per_axis(x, w), depthwise_conv(x, w)))
        row["same_forward_numbers"] = same
        # the gradients: the same sums added in another order
        row["gradient_max_rel_diff"] = float(max(
            jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))
            for a, b in zip(grads["one_pad"], grads["one_pad_autodiff"])))
        row["backward_speedup"] = round(row["one_pad_autodiff"]["forward_backward_ms"]
                                        / row["one_pad"]["forward_backward_ms"], 2)
        key = "x".join(map(str, shape[1:]))
        print(f"depthwise 5x5 {key}: {row}", file=sys.stderr, flush=True)
        out[key] = row
    return out


def depthwise_gradient_steps(rounds: int, steps: int, smoke: bool) -> dict:
    """The training step of the networks with depthwise layers (``fashion_mnist.py`` runs 4 and
    5's architectures), under the trainer's options, with the depthwise gradient JAX derives
    from the shifted sum (``autodiff``, swapped in while the step traces) against evonas's own
    (``custom``), in alternating rounds in this process."""
    import jax
    import jax.numpy as jnp

    from evonas.genomes import _layers
    from evonas.train.config import library_options

    nets = {k: v for k, v in networks(smoke).items() if k in ("run4_fashion", "run5_fashion")}
    out = {}
    batch = 128
    for name, (module, x, y, pipeline) in nets.items():
        x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
        runs = {}
        for choice in ("autodiff", "custom"):
            fun, params, state = step_program(module, x, y, pipeline, library_options("fast"))
            saved = _layers._depthwise_shifted
            if choice == "autodiff":
                _layers._depthwise_shifted = _layers._depthwise_taps
            try:
                params, state = fun(params, state, jnp.arange(batch), 0)  # traces and compiles
                jax.block_until_ready(params)
            finally:
                _layers._depthwise_shifted = saved
            runs[choice] = {"fun": fun, "params": params, "state": state, "ms": []}
        alternate(runs, rounds, steps, batch, len(y))
        row = {choice: round(float(np.median(run["ms"])), 2) for choice, run in runs.items()}
        row = {"autodiff_ms_per_step": row["autodiff"], "custom_ms_per_step": row["custom"],
               "speedup": round(row["autodiff"] / row["custom"], 2)}
        print(f"{name}, depthwise gradient: {row}", file=sys.stderr, flush=True)
        out[name] = row
    return out


def _downsample_by_reduction(x):
    """evonas's 2x downsample before it became a select: a reshape and a ``max`` reduction
    (same values; its gradient divides by how many inputs equal the max)."""
    import jax

    for axis in range(1, x.ndim - 1):
        n = x.shape[axis] // 2
        x = jax.lax.slice_in_dim(x, 0, 2 * n, axis=axis)
        x = x.reshape(x.shape[:axis] + (n, 2) + x.shape[axis + 1:]).max(axis=axis + 1)
    return x


def downsample_steps(rounds: int, steps: int, smoke: bool) -> dict:
    """The training step of two searched networks (``fashion_mnist.py`` runs 4 and 5's
    architectures, two downsamples each) with the 2x downsample as a ``max`` reduction
    (``reduction``, swapped in while the step traces) against evonas's select (``select``), in
    alternating rounds in this process."""
    import jax
    import jax.numpy as jnp

    from evonas.genomes import _layers
    from evonas.train.config import library_options

    nets = {k: v for k, v in networks(smoke).items() if k in ("run4_fashion", "run5_fashion")}
    out = {}
    batch = 128
    for name, (module, x, y, pipeline) in nets.items():
        x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
        runs = {}
        for choice in ("reduction", "select"):
            fun, params, state = step_program(module, x, y, pipeline, library_options("fast"))
            saved = _layers.downsample
            if choice == "reduction":
                _layers.downsample = _downsample_by_reduction
            try:
                params, state = fun(params, state, jnp.arange(batch), 0)  # traces and compiles
                jax.block_until_ready(params)
            finally:
                _layers.downsample = saved
            runs[choice] = {"fun": fun, "params": params, "state": state, "ms": []}
        alternate(runs, rounds, steps, batch, len(y))
        row = {choice: round(float(np.median(run["ms"])), 2) for choice, run in runs.items()}
        row = {"reduction_ms_per_step": row["reduction"], "select_ms_per_step": row["select"],
               "speedup": round(row["reduction"] / row["select"], 2)}
        print(f"{name}, downsample: {row}", file=sys.stderr, flush=True)
        out[name] = row
    return out


# jaxlib 0.10.2's own choice, which XLA_FLAGS restores (the user's flags win over evonas's)
JAXLIB_DEFAULT_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type="
                        "individual_dot,individual_convolution")


def search_once(steps: int, population: int, limit: int) -> dict:
    """One generation of random search over ``examples/fashion_mnist.yaml``'s space, through
    ``Experiment`` (the population trainer, its compiles and its evaluation): wall seconds."""
    import tempfile

    from fashion_mnist import cnn_space

    from evonas.experiment import Experiment, ExperimentConfig

    config = ExperimentConfig.from_dict({
        "dataset": {"name": "fashion_mnist", "limit": limit},
        "encoding": cnn_space(),
        "strategy": {"name": "random_search"},
        "train": {"steps": steps, "batch_size": 128, "compile_cache_dir": None,
                  "learning_rate": 3e-3, "augment": {"crop": 2, "flip": True}},
        "search": {"population_size": population, "generations": 1, "seed": 0,
                   "constraints": ["flops <= 12000000"]},
        "final": {"retrain": {"top_k": 0}},
        "display": {"progress": False, "report": False},
    })
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = Experiment(config, run_dir=Path(tmp) / "run").run()
    return {"wall_s": round(time.perf_counter() - start, 1),
            "best_val_acc": round(float(result.best["fitness"]), 4)}


def search_both(smoke: bool) -> dict:
    """:func:`search_once` in two fresh processes, this jaxlib's default kernels first (restored
    through ``XLA_FLAGS``) and then evonas's choice."""
    import os
    import subprocess

    sizes = ["--search-steps", "5", "--search-population", "2", "--search-limit", "256"] \
        if smoke else []
    out = {}
    for choice, flags in (("jaxlib_default", JAXLIB_DEFAULT_FLAGS), ("xla_convs", "")):
        env = dict(os.environ)
        env["XLA_FLAGS"] = " ".join(f for f in (env.get("XLA_FLAGS", ""), flags) if f)
        if not env["XLA_FLAGS"]:
            del env["XLA_FLAGS"]
        done = subprocess.run([sys.executable, __file__, "--search-one", *sizes], env=env,
                              capture_output=True, text=True, check=True)
        out[choice] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"search ({choice}): {out[choice]}", file=sys.stderr, flush=True)
    out["speedup"] = round(out["jaxlib_default"]["wall_s"] / out["xla_convs"]["wall_s"], 2)
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (numbers meaningless)")
    parser.add_argument("--search", action="store_true",
                        help="also time one generation of a Fashion-MNIST search both ways")
    parser.add_argument("--only-downsample", action="store_true",
                        help="only the downsample's two forms (about a minute)")
    parser.add_argument("--search-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--search-steps", type=int, default=100)
    parser.add_argument("--search-population", type=int, default=8)
    parser.add_argument("--search-limit", type=int, default=3000)
    args = parser.parse_args(argv)
    if args.search_one:
        out = search_once(args.search_steps, args.search_population, args.search_limit)
        print(json.dumps(out))
        return out

    import jax
    import jax.numpy as jnp

    from evonas.train.config import _LIBRARY_OPTIONS, _library_options_taken

    if not _library_options_taken():
        raise SystemExit("this jaxlib (or backend) does not take the library option; nothing "
                         "to compare")
    rounds, steps = (1, 1) if args.smoke else (args.rounds, args.steps)
    if args.only_downsample:
        out = {"benchmark": "image_step", "device": f"{jax.devices()[0].platform}",
               "batch_size": 128, "rounds": rounds, "steps_per_round": steps,
               "downsample": downsample_steps(rounds, steps, args.smoke)}
        print(json.dumps(out))
        return out
    result = {}
    for name, (module, x, y, pipeline) in networks(args.smoke).items():
        x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y)
        batch = 128
        runs = {}
        for choice, options in (("jaxlib_default", None), ("xla_convs", dict(_LIBRARY_OPTIONS))):
            fun, params, state = step_program(module, x, y, pipeline, options)
            idx = jnp.arange(batch)
            start = time.perf_counter()
            params, state = fun(params, state, idx, 0)
            jax.block_until_ready(params)
            runs[choice] = {"fun": fun, "params": params, "state": state, "ms": [],
                            "compile_s": round(time.perf_counter() - start, 2)}
        alternate(runs, rounds, steps, batch, len(y))
        row = {choice: {"ms_per_step": round(float(np.median(run["ms"])), 2),
                        "rounds_ms": [round(m, 1) for m in run["ms"]],
                        "compile_s": run["compile_s"]} for choice, run in runs.items()}
        row["speedup"] = round(row["jaxlib_default"]["ms_per_step"]
                               / row["xla_convs"]["ms_per_step"], 2)
        print(f"{name}: jaxlib's default {row['jaxlib_default']['ms_per_step']} ms, XLA's "
              f"convolutions {row['xla_convs']['ms_per_step']} ms a step ({row['speedup']}x)",
              file=sys.stderr, flush=True)
        result[name] = row
    out_layers = depthwise_layers(rounds, steps, args.smoke)
    gradient = depthwise_gradient_steps(rounds, steps, args.smoke)
    pooled = downsample_steps(rounds, steps, args.smoke)
    searched = search_both(args.smoke) if args.search else None
    out = {"benchmark": "image_step", "device": f"{jax.devices()[0].platform}",
           "batch_size": 128, "rounds": rounds, "steps_per_round": steps, "networks": result,
           "depthwise": out_layers, "depthwise_gradient": gradient, "downsample": pooled,
           "search": searched}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
