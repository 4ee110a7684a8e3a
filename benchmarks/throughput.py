"""Throughput of population training against one jitted Flax model per architecture.

The same random population of the ``conv`` encoding on MNIST-1D is trained with each execution
plan of ``evonas.train`` and with the baseline, one plain Flax model per architecture (from
``encoding.build``) jitted on its own, with the same steps, batches and optimiser. Each run is a
fresh subprocess with an empty persistent compilation cache, so every run pays its own compiles
and its peak RSS is its own.

Prints one JSON line (the last line)::

    {"benchmark": "throughput", "population": P, "steps": S, "device": "...",
     "baseline": {"archs_per_min", "compiles", "wall_s"},
     "plans": {PLAN: {"archs_per_min", "compiles", "executed_over_useful_flops", "peak_rss_mb",
                      "wall_s", "useful_peak_fraction"}},
     "warm": {PLAN: {"archs_per_min", "compiles", "compile_s", "disk_cache_hits", "wall_s"}}
              or null,
     "speedup": {PLAN: archs/min over the baseline's}, "best_val_acc": ...,
     "peer": {"torch": {"archs_per_min", "wall_s", "best_val_acc", "threads"} or null,
              "note": ...}, "over_peer": {PLAN: archs/min over the peer's}}

``--peer torch`` adds what users would run instead: the same architectures, steps, batches,
optimiser and schedule trained one after another in PyTorch eager (``benchmarks/torch_peer.py``;
torch from the ``peers`` extra). Without torch installed the peer is skipped with a note.

``useful_peak_fraction``: useful training FLOPs per second (2 FLOPs a MAC, forward + backward
about 3x the forward pass) over the matmul peak measured in the same run (a jitted 1024x1024
float32 matmul). Diagnostics (plan choice, groups, step times inside the trainer's loop against
the baseline's) go to stderr.

A plan written ``auto:serial`` runs without compiling the chunks to come while one trains
(``evonas.train.loop.COMPILE_AHEAD``), to measure what that overlap saves.

``--warm`` runs each plan a second time in a new process on the first run's persistent
compilation cache, as a user's second run of the same experiment would (``"warm"``: its
compiles, compile seconds and programs loaded from the cache; ``"over_peer_warm"``).

Usage: ``python benchmarks/throughput.py [--population 64] [--steps 300] [--batch-size 128]
[--plans masked,grouped,auto] [--peer torch] [--warm] [--no-baseline]``

On a CPU the fully masked supernet steps at about 130 ms per individual (executing several times
the useful FLOPs), so ``masked`` at 64 x 300 takes the better part of an hour there; measure it
with ``--plans masked --population 4 --steps 20`` and the others with ``--plans grouped,auto``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

# Run from a checkout without installing: the repository root holds the evonas package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PLANS = ("masked", "grouped", "auto")


def _log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def matmul_peak_flops(size: int = 1024, reps: int = 20) -> float:
    """FLOP/s of a jitted ``size x size`` float32 matmul: the machine's practical peak."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            out = f(a)
        out.block_until_ready()
        best = min(best, (time.perf_counter() - t) / reps)
    return 2.0 * size**3 / best


def _setup(args: argparse.Namespace):
    import jax
    import numpy as np

    from evonas.data import load_dataset
    from evonas.genomes.conv import ConvEncoding
    from evonas.train import TrainConfig

    dataset = load_dataset("mnist1d")
    encoding = ConvEncoding(input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    genomes = np.asarray(encoding.space.sample(jax.random.key(args.seed), args.population))
    config = TrainConfig(steps=args.steps, batch_size=args.batch_size, optimizer="adam",
                         learning_rate=args.learning_rate, schedule="cosine",
                         plan=args.child.split(":")[0] if args.child.split(":")[0] in PLANS
                         else "auto",
                         compile_cache_dir=args.cache_dir)
    return dataset, encoding, genomes, config


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_plan(args: argparse.Namespace) -> dict:
    """Trains the population with one plan (in this process) and measures it."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from evonas.train import loop, train_population

    # "PLAN:serial": without compiling the chunks to come while one trains (what it saves)
    loop.COMPILE_AHEAD = not args.child.endswith(":serial")
    dataset, encoding, genomes, config = _setup(args)
    start = time.perf_counter()
    result = train_population(jax.random.key(args.seed + 1), encoding, genomes, dataset, config)
    wall = time.perf_counter() - start
    costs = jax.vmap(encoding.cost)(jnp.asarray(genomes))
    useful = float(jnp.sum(costs["flops"]))
    executed = 0.0
    for g in result.groups:  # every call of a group's program runs g.size individuals
        calls = -(-len(g.members) // g.size)
        executed += calls * g.size * float(
            encoding.cost(genomes[g.members[0]], g.bounds)["executed_flops"])
    train_flops = 2.0 * 3.0 * useful * args.batch_size * args.steps
    _log(f"[{args.child}] plan={result.plan} groups={len(result.groups)} "
         f"sizes={[g.size for g in result.groups]} compiles={result.compiles} "
         f"compile_s={result.compile_seconds:.1f} estimated_s={result.estimated_seconds:.1f} "
         f"wall_s={wall:.1f} step_ms={[round(1e3 * s, 2) for s in result.step_seconds]} "
         f"failed={int(result.failed.sum())}")
    return {
        "archs_per_min": 60.0 * len(genomes) / wall,
        "compiles": result.compiles,
        "compile_s": result.compile_seconds,
        "disk_cache_hits": result.disk_cache_hits,
        "executed_over_useful_flops": executed / useful,
        "peak_rss_mb": _peak_rss_mb(),
        "wall_s": wall,
        "useful_flops_per_s": train_flops / wall,
        "best_val_acc": float(np.nanmax(result.metrics["val_acc"])),
        "val_acc": result.metrics["val_acc"].tolist(),
        "step_s": {str(g.members[0]): s for g, s in zip(result.groups, result.step_seconds)
                   if len(g.members) == 1},
    }


def _baseline_step(module, opt, params, opt_state, x, y, indices, t):
    import jax
    import optax

    idx = indices[t]

    def loss_fn(p):
        logits = module.apply({"params": p}, x[idx])
        return optax.softmax_cross_entropy_with_integer_labels(logits, y[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _baseline_accuracy(module, params, x, y):
    import jax.numpy as jnp

    return jnp.mean(jnp.argmax(module.apply({"params": params}, x), -1) == y)


def run_baseline(args: argparse.Namespace) -> dict:
    """One plain Flax model per architecture, jitted on its own, trained one after another."""
    import jax
    import jax.numpy as jnp

    from evonas.data import batch_indices
    from evonas.train import CompileCounter

    dataset, encoding, genomes, config = _setup(args)
    opt = config.program_options().optimizer_fn()
    init_key, batch_key = jax.random.split(jax.random.key(args.seed + 1))
    start = time.perf_counter()
    with CompileCounter() as counter:
        x, y = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)
        x_val, y_val = jnp.asarray(dataset.x_val), jnp.asarray(dataset.y_val)
        indices = batch_indices(batch_key, len(dataset.y_train), args.batch_size, args.steps)
        accs, step_s = [], {}
        for i, genome in enumerate(genomes):  # one program per architecture: the baseline
            module, _ = encoding.build(genome)
            # The Flax examples' way: init eagerly, jit the training step and the evaluation.
            params = module.init(jax.random.fold_in(init_key, i), x[:1])["params"]
            opt_state = opt.init(params)
            step = jax.jit(functools.partial(_baseline_step, module, opt), donate_argnums=(0, 1))
            params, opt_state, loss = step(params, opt_state, x, y, indices, 0)
            loss.block_until_ready()
            t = time.perf_counter()
            for s in range(1, args.steps):
                params, opt_state, loss = step(params, opt_state, x, y, indices, s)
            loss.block_until_ready()
            step_s[str(i)] = (time.perf_counter() - t) / max(args.steps - 1, 1)
            acc = jax.jit(functools.partial(_baseline_accuracy, module))(params, x_val, y_val)
            accs.append(float(acc))
    wall = time.perf_counter() - start
    _log(f"[baseline] compiles={counter.compiles} compile_s={counter.seconds:.1f} "
         f"wall_s={wall:.1f} mean_step_ms={1e3 * sum(step_s.values()) / len(step_s):.2f}")
    return {"archs_per_min": 60.0 * len(genomes) / wall, "compiles": counter.compiles,
            "wall_s": wall, "best_val_acc": max(accs), "step_s": step_s}


def run_torch(args: argparse.Namespace) -> dict:
    """The PyTorch eager peer: the same architectures and batches, one after another."""
    import jax
    import torch_peer

    from evonas.data import batch_indices

    dataset, encoding, genomes, _ = _setup(args)
    _, batch_key = jax.random.split(jax.random.key(args.seed + 1))
    indices = batch_indices(batch_key, len(dataset.y_train), args.batch_size, args.steps)
    out = torch_peer.train_all(encoding, genomes, dataset, indices, args.steps,
                               args.learning_rate, args.seed)
    import torch

    out["threads"] = torch.get_num_threads()
    out["archs_per_min"] = 60.0 * len(genomes) / out["wall_s"]
    _log(f"[torch] threads={out['threads']} wall_s={out['wall_s']:.1f} mean_step_ms="
         f"{1e3 * sum(out['step_s'].values()) / len(out['step_s']):.2f}")
    return out


def _child(args: argparse.Namespace, what: str, cache_dir: str | None = None) -> dict:
    """Runs ``what`` in a fresh process with the persistent compilation cache at ``cache_dir``
    (None: a new, empty one, so every compile counts)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", what, "--plans", args.plans,
           "--population", str(args.population), "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--seed", str(args.seed),
           "--learning-rate", str(args.learning_rate)]
    with tempfile.TemporaryDirectory() as cold:
        proc = subprocess.run(cmd + ["--cache-dir", cache_dir or cold], capture_output=True,
                              text=True)
    sys.stderr.write(proc.stderr if proc.returncode else "".join(
        line + "\n" for line in proc.stderr.splitlines() if line.startswith("[")))
    if proc.returncode:
        raise SystemExit(f"{what} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _cold_and_warm(args: argparse.Namespace, plan: str) -> tuple[dict, dict]:
    """``plan`` run twice in fresh processes sharing one persistent cache: the first compiles
    everything, the second is a user's second run of the same experiment."""
    with tempfile.TemporaryDirectory() as cache_dir:
        return _child(args, plan, cache_dir), _child(args, plan, cache_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--plans", default=",".join(PLANS),
                        help="comma-separated subset of masked,grouped,auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--peer", default=None, choices=["torch"],
                        help="also train the architectures in PyTorch eager, one after another")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the one-jit-per-architecture baseline")
    parser.add_argument("--warm", action="store_true",
                        help="run each plan a second time on the first run's persistent "
                        "compilation cache (a user's second run) and report both")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    plans = [p.strip() for p in args.plans.split(",") if p.strip()]
    for p in plans:
        if p.removesuffix(":serial") not in PLANS:
            parser.error(f"--plans: unknown plan {p!r}; allowed: {', '.join(PLANS)}, each "
                         "optionally with ':serial' (no compiling ahead)")
    if args.population < 1 or args.steps < 1 or args.batch_size < 1:
        parser.error("--population, --steps and --batch-size must be positive integers")

    if args.child is not None:  # a measured run, in its own process
        run = {"baseline": run_baseline, "torch": run_torch}.get(args.child, run_plan)
        out = run(args)
        print(json.dumps(out))
        return

    import jax

    peak = matmul_peak_flops()
    device = f"{jax.devices()[0].platform} ({os.cpu_count()} cores, {platform.machine()})"
    _log(f"matmul peak: {peak / 1e9:.1f} GFLOP/s on {device}")
    baseline = _child(args, "baseline") if args.baseline else None
    warm = {}
    if args.warm:
        results = {}
        for p in plans:
            results[p], warm[p] = _cold_and_warm(args, p)
    else:
        results = {p: _child(args, p) for p in plans}
    peer, note = None, None
    if args.peer == "torch":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torch_peer

        if torch_peer.available():
            peer = _child(args, "torch")
        else:
            note = "torch is not installed (pip install '.[peers]'): the peer was skipped"
            _log(note)
    for p, r in results.items() if baseline else ():  # trainer's step vs the baseline's
        common = sorted(set(r["step_s"]) & set(baseline["step_s"]), key=int)
        if common:
            ours = sum(r["step_s"][i] for i in common) / len(common)
            theirs = sum(baseline["step_s"][i] for i in common) / len(common)
            _log(f"[{p}] single-individual groups: step {1e3 * ours:.2f} ms in the trainer's "
                 f"loop vs {1e3 * theirs:.2f} ms jitted alone ({len(common)} architectures)")
    best = max([r["best_val_acc"] for r in [baseline, peer, *results.values()] if r])
    print(json.dumps({
        "benchmark": "throughput",
        "population": args.population,
        "steps": args.steps,
        "device": device,
        "baseline": (None if baseline is None else
                     {k: baseline[k] for k in ("archs_per_min", "compiles", "wall_s")}),
        "warm": {p: {k: r[k] for k in ("archs_per_min", "compiles", "compile_s",
                                       "disk_cache_hits", "wall_s")}
                 for p, r in warm.items()} or None,
        "plans": {p: {"archs_per_min": r["archs_per_min"], "compiles": r["compiles"],
                      "compile_s": r["compile_s"],
                      "executed_over_useful_flops": r["executed_over_useful_flops"],
                      "peak_rss_mb": r["peak_rss_mb"], "wall_s": r["wall_s"],
                      "useful_peak_fraction": r["useful_flops_per_s"] / peak}
                  for p, r in results.items()},
        "speedup": {p: r["archs_per_min"] / baseline["archs_per_min"]
                    for p, r in results.items()} if baseline else None,
        "best_val_acc": best,
        "peer": {"torch": None if peer is None else {
            k: peer[k] for k in ("archs_per_min", "wall_s", "best_val_acc", "threads")},
            "note": note},
        "over_peer": {p: r["archs_per_min"] / peer["archs_per_min"]
                      for p, r in results.items()} if peer else None,
        "over_peer_warm": {p: r["archs_per_min"] / peer["archs_per_min"]
                           for p, r in warm.items()} if peer and warm else None,
    }))


if __name__ == "__main__":
    main()
