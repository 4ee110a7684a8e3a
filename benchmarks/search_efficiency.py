"""Cheap evaluation, measured: how well each cheap estimate ranks architectures, and how fast each
cheap method finds a good one, on the ``conv`` space and MNIST-1D.

Part 1, fidelity. ``--archs`` random architectures trained stand-alone (each with its own
weights, all at once by the population trainer) for the final retraining budget
(``--truth-steps``, the default config's ``final.retrain.steps``) give the ground truth: their
validation accuracy. Every cheap estimate of the same architectures is ranked against it
(Kendall tau-b, Spearman rho) with the seconds it cost for all of them: the one-shot supernet's
accuracy (supernet training included), 50 and 200 steps of training, each zero-cost proxy, and
the analytic ``params`` and ``flops``. The supernet's single-path step is timed against the
sampled architectures' own steps (each a stand-alone jitted step) and the masked supernet's.

Part 2, time to quality. The default experiment (regularized evolution, 5 generations of 16,
200 training steps) and the same with successive halving (rungs 25 and 75, eta 3), weight
inheritance (children train 50 steps), the one-shot evaluator (4000 supernet steps, 20
generations) and a NASWOT pre-filter (4 candidates per trained genome), each exactly the YAML a
user runs (``evonas run examples/successive_halving.yaml``, ``weight_inheritance.yaml``,
``oneshot.yaml``, ``proxy_prefilter.yaml``) with only the top 1 retrained, ``--seeds`` seeds each:
search seconds (the generations' wall time; retraining excluded), the best validation fitness
found, and the top-1 architecture's test accuracy after the final retraining from scratch.

    python benchmarks/search_efficiency.py

Time it alone on the machine. The last line printed is one JSON object::

    {"benchmark": "search_efficiency",
     "fidelity": {ESTIMATE: {"kendall": ..., "spearman": ..., "seconds": ...}},
     "methods": {METHOD: {"search_s": [...], "best_val": [...], "retrained_test": [...]}},
     ...}
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Part 2's methods are the examples a user runs: each its YAML in examples/ (None: the defaults).
METHODS = {
    "default": None,
    "halving": "successive_halving.yaml",
    "inherit": "weight_inheritance.yaml",
    "oneshot": "oneshot.yaml",
    "few_shot": "few_shot.yaml",
    "proxy": "proxy_prefilter.yaml",
    "darts": "darts.yaml",
    "darts_argmax": "darts_argmax.yaml",
    "gdas": "gdas.yaml",
    "drnas": "drnas.yaml",
}
# --space fashion: part 2 on the Fashion-MNIST CNN space (examples/fashion_mnist.yaml's data,
# space, training and constraint), each method at a fixed budget (--fashion-generations of
# the default instead of its time budget); every method's own settings otherwise.
FASHION = "fashion_mnist.yaml"


def fashion_overrides(limit: int, retrain_steps: int) -> list[str]:
    """The Fashion-MNIST example's data, space, training and constraint, as overrides."""
    import yaml

    example = yaml.safe_load((ROOT / "examples" / FASHION).read_text())
    train = {k: example["train"][k] for k in ("steps", "batch_size", "learning_rate",
                                              "weight_decay", "augment")}
    return ["dataset.name=fashion_mnist", f"dataset.limit={limit}",
            f"encoding={json.dumps(example['encoding'])}",
            *(f"train.{k}={json.dumps(v)}" for k, v in train.items()),
            f"search.constraints={json.dumps(example['search']['constraints'])}",
            f"final.retrain.steps={retrain_steps}"]


# Regularized evolution's toy population (the methods that search with it).
EVOLUTION = ["strategy.params.population_size=4", "strategy.params.sample_size=2"]
# --quick: every part at toy sizes (seconds, for the tests), numbers meaningless.
QUICK = {
    "args": {"archs": 4, "truth_steps": 20, "low_steps": [10], "supernet_steps": 20,
             "split_steps": 10,
             "timed_archs": 2, "repeats": 2, "seeds": 1},
    "set": ["dataset.limit=400", "search.generations=2", "search.population_size=4",
            "train.steps=20", "final.retrain.steps=40"],
    # after each example's own settings: toy budgets that keep its method
    "methods": {"default": [*EVOLUTION],
                "halving": [*EVOLUTION, "evaluator.halving.rungs=[5, 10]",
                            "evaluator.halving.eta=2"],
                "inherit": [*EVOLUTION, "evaluator.inherit.steps=5"],
                "oneshot": [*EVOLUTION, "evaluator.supernet_steps=20", "train.steps_per_call=5",
                            "search.generations=3"],
                "few_shot": [*EVOLUTION, "evaluator.supernet_steps=20",
                             "evaluator.options.split_steps=10", "train.steps_per_call=5",
                             "search.generations=3"],
                "proxy": [*EVOLUTION],
                **{m: ["strategy.params.epochs_per_generation=1"]
                   for m in ("darts", "darts_argmax", "gdas", "drnas")}},
    # --space fashion's default (the Fashion example): its halving rung within the toy steps
    "fashion_default": ["evaluator.halving.rungs=[5]"],
}


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as scipy's ``rankdata``."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra**2).sum() * (rb**2).sum())
    return float((ra * rb).sum() / denominator) if denominator else float("nan")


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b (ties in either variable accounted for), O(n^2)."""
    da = np.sign(a[:, None] - a[None, :])
    db = np.sign(b[:, None] - b[None, :])
    upper = np.triu_indices(len(a), 1)
    da, db = da[upper], db[upper]
    denominator = np.sqrt((da != 0).sum() * (db != 0).sum())
    return float((da * db).sum() / denominator) if denominator else float("nan")


def _finite(values: np.ndarray, fill: float) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return np.where(np.isfinite(values), values, fill)


def _config(overrides: list[str], example: str | None = None):
    from evonas.experiment import ExperimentConfig

    config = (ExperimentConfig() if example is None
              else ExperimentConfig.from_yaml(ROOT / "examples" / example))
    # Every run cold, as before the persistent cache was on by default: each method and seed
    # pays its own compiles, so their seconds compare.
    return config.with_overrides([*overrides, "train.compile_cache_dir=null"])


def _step_times(encoding, params, genomes, dataset, batch_size: int, repeats: int) -> dict:
    """Seconds per optimiser step of one architecture at ``batch_size``: its stand-alone module
    (a program per architecture), the single path on the shared weights, and the masked
    supernet on them (each compiled once, then timed over ``repeats`` steps)."""
    import jax
    import jax.numpy as jnp
    import optax

    from evonas.train.oneshot import path_forward
    from evonas.train.step import cross_entropy

    x = jnp.asarray(dataset.x_train[:batch_size])
    y = jnp.asarray(dataset.y_train[:batch_size])
    optimizer = optax.adam(1e-3)
    supernet = encoding.supernet(encoding.max_bounds())

    def timed(step, p, *args):
        state = (p, optimizer.init(p))
        state = step(state, *args)
        jax.block_until_ready(state)
        start = time.perf_counter()
        for _ in range(repeats):
            state = step(state, *args)
        jax.block_until_ready(state)
        return (time.perf_counter() - start) / repeats

    def make(loss_fn):
        @jax.jit
        def step(state, *args):
            p, s = state
            grads = jax.grad(loss_fn)(p, *args)
            updates, s = optimizer.update(grads, s, p)
            return optax.apply_updates(p, updates), s
        return step

    single = make(lambda p, g: cross_entropy(path_forward(encoding)(p, g, x), y))
    masked = make(lambda p, g: cross_entropy(
        supernet.apply({"params": p}, encoding.decode(g), x), y))
    own, path, mask = [], [], []
    for genome in genomes:
        module, to_params = encoding.build(genome)
        alone = make(lambda p, m=module: cross_entropy(m.apply({"params": p}, x), y))
        own.append(timed(alone, to_params(params)))
        path.append(timed(single, params, jnp.asarray(genome)))
        mask.append(timed(masked, params, jnp.asarray(genome)))
    return {"standalone_step_s": float(np.mean(own)), "single_path_step_s": float(np.mean(path)),
            "masked_supernet_step_s": float(np.mean(mask)),
            "single_path_over_standalone": float(np.mean(path) / np.mean(own)),
            "masked_over_standalone": float(np.mean(mask) / np.mean(own)),
            "architectures_timed": len(own), "batch_size": batch_size}


def fidelity(args) -> tuple[dict, dict]:
    """Part 1: every cheap estimate against stand-alone training, and the step times."""
    import jax

    from evonas.evaluators.oneshot import FewShotEvaluator, OneShotEvaluator
    from evonas.experiment.components import build_model_parts
    from evonas.train import PROXIES, TrainConfig, train_population, zero_cost_scores

    config = _config(args.set)
    dataset, encoding, _ = build_model_parts(config)
    genomes = np.asarray(encoding.space.sample(jax.random.key(args.seed), args.archs))
    key = jax.random.key(args.seed + 1)
    base = config.train

    def trained(steps: int) -> tuple[np.ndarray, float]:
        train = TrainConfig(**{**base.__dict__, "steps": steps, "plan": "auto"})
        start = time.perf_counter()
        result = train_population(key, encoding, genomes, dataset, train)
        return result.metrics["val_acc"], time.perf_counter() - start

    truth, truth_s = trained(args.truth_steps)
    print(f"ground truth: {args.archs} architectures x {args.truth_steps} steps in "
          f"{truth_s:.0f} s; val acc {np.nanmin(truth):.3f}..{np.nanmax(truth):.3f}", flush=True)
    truth = _finite(truth, 0.0)
    estimates: dict[str, tuple[np.ndarray, float]] = {}
    for steps in args.low_steps:
        estimates[f"steps_{steps}"] = trained(steps)
    start = time.perf_counter()
    one_shot = OneShotEvaluator(encoding, dataset, TrainConfig(**{
        **base.__dict__, "steps_per_call": 50 if args.supernet_steps % 50 == 0 else 1}),
        supernet_steps=args.supernet_steps, key=jax.random.key(args.seed + 2))
    scored = one_shot.evaluate(key, genomes)
    estimates["oneshot"] = (np.asarray(scored.fitness), time.perf_counter() - start)
    supernet_info = one_shot.describe()
    # Few-shot: the same one-shot supernet split on one gene, each sub-supernet trained on.
    few_shot = FewShotEvaluator(encoding, dataset, one_shot.config,
                                supernet_steps=args.supernet_steps, key=one_shot.key,
                                split_steps=args.split_steps)
    few_shot.trained = one_shot.trained  # shared: the split's seconds come on top
    start = time.perf_counter()
    scored = few_shot.evaluate(key, genomes)
    estimates["fewshot"] = (np.asarray(scored.fitness),
                            estimates["oneshot"][1] + time.perf_counter() - start)
    supernet_info["few_shot"] = {k: few_shot.describe()[k]
                                 for k in ("split_gene", "split_steps", "split_seconds")}
    for name in PROXIES:
        if name == "synflow" and getattr(encoding, "batch_statistics", False):
            continue
        start = time.perf_counter()
        score = zero_cost_scores(key, encoding, genomes, dataset, (name,))[name]
        estimates[name] = (score, time.perf_counter() - start)
    start = time.perf_counter()
    costs = jax.vmap(encoding.cost)(genomes)
    cost_s = time.perf_counter() - start
    for name in ("params", "flops"):
        estimates[name] = (np.asarray(costs[name]), cost_s)
    out = {}
    # Where ranking matters: among the architectures whose true accuracy is in the top tenth.
    top = truth >= np.quantile(truth, 0.9)
    for name, (values, seconds) in estimates.items():
        values = _finite(values, -np.inf)  # what can't be scored ranks last
        out[name] = {"kendall": kendall(values, truth), "spearman": spearman(values, truth),
                     "kendall_top_decile": (kendall(values[top], truth[top])
                                            if top.sum() >= 3 else None),
                     "top_decile_archs": int(top.sum()), "seconds": float(seconds)}
        print(f"  {name:10s} tau {out[name]['kendall']:+.3f}  rho {out[name]['spearman']:+.3f}"
              f"  top-decile tau {out[name]['kendall_top_decile'] or float('nan'):+.3f}"
              f"  {seconds:7.1f} s",
              flush=True)
    steps = _step_times(encoding, one_shot.supernet(), genomes[:args.timed_archs], dataset,
                        base.batch_size, args.repeats)
    extra = {"truth": {"archs": args.archs, "steps": args.truth_steps, "seconds": truth_s,
                       "val_acc_mean": float(np.mean(truth))},
             "supernet": {k: v for k, v in supernet_info.items() if k != "trained"},
             "oneshot_step": steps}
    print(f"  one-shot step {steps['single_path_step_s'] * 1e3:.1f} ms, own step "
          f"{steps['standalone_step_s'] * 1e3:.1f} ms, masked supernet step "
          f"{steps['masked_supernet_step_s'] * 1e3:.1f} ms", flush=True)
    return out, extra


def time_to_quality(args) -> dict:
    """Part 2: each method's search seconds, best validation fitness and retrained top-1.

    Every run is its own ``evonas run`` process, as a user runs it: no run reuses another's
    compiled programs (the persistent compilation cache is off in these configs, see
    ``_config``)."""
    import subprocess
    import sys

    import yaml

    from evonas.store import History
    from evonas.store.atomic import read_json

    out = {}
    for method in args.methods:
        runs = {"search_s": [], "best_val": [], "retrained_test": []}
        for seed in range(args.seeds):
            overrides = [*args.set, *args.method_overrides.get(method, []),
                         f"search.seed={seed}", "final.retrain.top_k=1",
                         "display.progress=false", "display.report=false", *args.method_set]
            example = METHODS[method]
            if args.space == "fashion":
                overrides = [*args.space_set, *overrides]
                if method == "default":  # the Fashion-MNIST example itself, at a fixed budget
                    example = FASHION
                    overrides = [*overrides, "search.time_budget=null",
                                 f"search.generations={args.fashion_generations}",
                                 *(QUICK["fashion_default"] if args.quick else [])]
            config = _config(overrides, example)
            with tempfile.TemporaryDirectory() as tmp:
                path, run_dir = Path(tmp) / "config.yaml", Path(tmp) / "run"
                path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
                done = subprocess.run([sys.executable, "-m", "evonas.cli", "run", str(path),
                                       "--run-dir", str(run_dir)], capture_output=True,
                                      text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"{method} seed {seed} failed: {done.stderr[-2000:]}")
                with History(run_dir / "history.sqlite", readonly=True) as history:
                    search_s = sum(g["wall_seconds"] for g in history.generations())
                    ok = [r["fitness"] for r in history.rows()
                          if not r["failed"] and r["fitness"] is not None]
                final = read_json(run_dir / "best" / "final.json") or {}
            runs["search_s"].append(float(search_s))
            runs["best_val"].append(float(max(ok)) if ok else None)
            runs["retrained_test"].append(final.get("best_test_acc"))
            print(f"  {method:8s} seed {seed}: search {search_s:6.1f} s, best val "
                  f"{runs['best_val'][-1]}, retrained test {runs['retrained_test'][-1]}",
                  flush=True)
        out[method] = runs
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=64)
    parser.add_argument("--truth-steps", type=int, default=None,
                        help="ground-truth training steps (default: final.retrain.steps)")
    parser.add_argument("--low-steps", type=int, nargs="*", default=[50, 200])
    parser.add_argument("--supernet-steps", type=int, default=4000)
    parser.add_argument("--split-steps", type=int, default=1000,
                        help="steps of each few-shot sub-supernet, from the one-shot weights")
    parser.add_argument("--timed-archs", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed of part 1's architectures")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--parts", default="fidelity,methods")
    parser.add_argument("--set", action="append", default=[],
                        help="a config override for both parts (repeatable)")
    parser.add_argument("--method-set", action="append", default=[],
                        help="a config override for part 2 only, after the method's own")
    parser.add_argument("--space", choices=("mnist1d", "fashion"), default="mnist1d",
                        help="part 2's space and data: the default conv space on MNIST-1D, or "
                        "the Fashion-MNIST CNN space of examples/fashion_mnist.yaml")
    parser.add_argument("--fashion-limit", type=int, default=6000,
                        help="--space fashion: training images")
    parser.add_argument("--fashion-generations", type=int, default=3,
                        help="--space fashion: the default method's generations of 8")
    parser.add_argument("--fashion-retrain-steps", type=int, default=1500)
    parser.add_argument("--quick", action="store_true",
                        help="toy sizes: checks that everything runs, numbers meaningless")
    args = parser.parse_args(argv)
    args.method_overrides = {}
    if args.quick:
        for name, value in QUICK["args"].items():
            setattr(args, name, value)
        args.set = [*QUICK["set"], *args.set]
        args.method_overrides = QUICK["methods"]
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"--methods: unknown {unknown}; choose from {list(METHODS)}")
    if args.truth_steps is None:
        args.truth_steps = _config(args.set).final.retrain.steps
    parts = args.parts.split(",")
    args.space_set = []
    if args.space == "fashion":
        if "fidelity" in parts:
            parser.error("--space fashion measures part 2 only: add --parts methods")
        args.space_set = fashion_overrides(args.fashion_limit, args.fashion_retrain_steps)
    out: dict = {"benchmark": "search_efficiency", "space": args.space}
    began = time.perf_counter()
    if "fidelity" in parts:
        out["fidelity"], extra = fidelity(args)
        out.update(extra)
    if "methods" in parts:
        out["methods"] = time_to_quality(args)
        default = out["methods"].get("default")
        if default:
            base_s = float(np.mean(default["search_s"]))
            tests = [t for t in default["retrained_test"] if t is not None]
            base_test = float(np.mean(tests)) if tests else float("nan")
            out["summary"] = {m: {
                "search_s_vs_default": float(np.mean(r["search_s"])) / base_s,
                "retrained_test_minus_default": float(np.mean(
                    [t for t in r["retrained_test"] if t is not None] or [np.nan])) - base_test,
            } for m, r in out["methods"].items()}
    out["seconds"] = time.perf_counter() - began
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
