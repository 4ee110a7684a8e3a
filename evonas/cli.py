"""The ``evonas`` command line.

Bad input (an unknown name, a genome outside its space, a bad option) prints one line,
``evonas: error: ...``, and exits with status 2, as argparse does for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

EXIT_USAGE = 2


class UsageError(ValueError):
    """Bad input from the user: reported in one line, exit status 2."""


def _parse_value(text: str) -> Any:
    """``key=value`` values: JSON where it parses (numbers, lists, booleans), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"an option must look like key=value; got {pair!r}")
        key, value = pair.split("=", 1)
        options[key.strip()] = _parse_value(value)
    return options


def parse_genome(encoding: Any, text: str) -> np.ndarray:
    """Reads a genome given on the command line.

    Accepted: the encoding's own notation when it has a ``parse`` method (NAS-Bench-201: an arch
    string or a benchmark index), a JSON list of integers, comma-separated integers, or a JSON
    object ``{gene: value}``.
    """
    text = text.strip()
    parse = getattr(encoding, "parse", None)
    if parse is not None:
        return np.asarray(parse(text), np.int32)
    value = _parse_value(text)
    if isinstance(value, dict):
        return encoding.space.from_dict(value)
    if isinstance(value, str) and "," in value:
        try:
            value = [int(v) for v in value.split(",")]
        except ValueError:
            raise UsageError(f"cannot read genome {text!r}: expected integers") from None
    if isinstance(value, int):
        value = [value]
    if not isinstance(value, list):
        raise UsageError(
            f"cannot read genome {text!r}: give a JSON list of {encoding.space.num_genes} "
            "integers, comma-separated integers, or a JSON object {gene: value}"
        )
    return encoding.space.validate(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def cmd_describe(args: argparse.Namespace) -> int:
    from evonas.genomes import get_encoding

    options = _parse_options(args.option)
    try:
        encoding = get_encoding(args.encoding, **options)
    except TypeError as err:  # an option the encoding's factory does not take
        raise UsageError(f"encoding {args.encoding!r} rejected options {options}: {err}") from None
    genome = parse_genome(encoding, args.genome)
    cost = {k: float(v) for k, v in encoding.cost(genome).items()}
    out = {
        "encoding": args.encoding,
        "genome": genome.tolist(),
        "genes": encoding.space.to_dict(genome),
        "description": encoding.describe(genome),
        "cost": cost,
    }
    print(json.dumps(_jsonable(out), indent=None if args.compact else 2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from evonas.genomes import list_encodings
    from evonas.strategies import list_strategies

    listing = {"encodings": list_encodings(), "strategies": list_strategies()}
    if args.json:
        print(json.dumps(listing))
    else:
        for kind, names in listing.items():
            print(f"{kind}:")
            for name in names:
                print(f"  {name}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import jax

    from evonas.benchmarks.nb201 import DATASETS, load_table
    from evonas.benchmarks.search import (
        run_searches,
        selected_true,
        summarize,
        tabular_evaluate,
    )
    from evonas.evaluators import TabularEvaluator
    from evonas.strategies import get_strategy

    if args.runs < 1 or args.budget < 1:
        raise UsageError(f"--runs and --budget must be positive; got {args.runs}, {args.budget}")
    evaluator = TabularEvaluator(args.dataset, objectives=args.objective, noise=args.noise,
                                 constraints=args.constraint)
    params = _parse_options(args.set)
    if args.objective:
        return _bench_multiobjective(args, evaluator, params)
    try:
        strategy = get_strategy(args.strategy, evaluator.encoding.space, **params)
    except TypeError as err:  # a parameter the strategy does not take
        raise UsageError(
            f"strategy {args.strategy!r} rejected parameters {params}: {err}"
        ) from None
    trace = run_searches(
        strategy, tabular_evaluate(evaluator), jax.random.key(args.seed), args.runs, args.budget
    )
    selected = selected_true(np.asarray(trace.observed), np.asarray(trace.true))
    table = load_table()
    optimum = float(table.test_acc[DATASETS.index(args.dataset)].max())
    checkpoints = (10, 30, 100, 300, 1000, 3000, 10000)
    best_run = int(np.argmax(selected[:, -1]))
    best_at = int(np.argmax(np.where(np.isnan(trace.observed[best_run]), -np.inf,
                                     trace.observed[best_run])))
    best_genome = np.asarray(trace.genomes[best_run, best_at])
    out = {
        "benchmark": "nb201",
        "protocol": evaluator.protocol,
        "dataset": args.dataset,
        "strategy": args.strategy,
        "runs": args.runs,
        "budget": args.budget,
        "noise": args.noise,
        "optimum": round(optimum, 4),
        **summarize(selected, optimum, checkpoints),
        "best": {
            "genome": best_genome.tolist(),
            "arch_str": evaluator.encoding.to_arch_str(best_genome),
            "index": table.index_of(best_genome),
            "test_acc": round(float(selected[best_run, -1]), 4),
        },
    }
    print(json.dumps(out, indent=None if args.compact else 2))
    return 0


def _bench_multiobjective(args: argparse.Namespace, evaluator: Any,
                          params: dict[str, Any]) -> int:
    """``evonas bench nb201 --objective ...``: accuracy against table costs, hypervolume gaps to
    the table's true front (feasible architectures only) and the front the first run found."""
    import jax
    import jax.numpy as jnp

    from evonas.benchmarks.nb201 import load_table
    from evonas.benchmarks.search import run_searches
    from evonas.pareto import hypervolume, pareto_front
    from evonas.strategies import get_strategy
    from evonas.strategies.base import num_objectives

    maximize = (True,) + (False,) * len(evaluator.objectives)
    space = evaluator.encoding.space
    try:
        probe = get_strategy(args.strategy, space, **params)
        multi = num_objectives(probe) > 1
        strategy = get_strategy(args.strategy, space, maximize=maximize if multi else True,
                                **params)
    except TypeError as err:
        raise UsageError(f"strategy {args.strategy!r} rejected parameters {params}: {err}"
                         ) from None

    def evaluate(key, genomes):
        results = evaluator.evaluate(key, genomes)
        true = jnp.stack([results.metrics["test_acc"]] + [results.objectives[n] for n in
                                                          evaluator.objectives], axis=-1)
        true = jnp.where(results.failed[:, None], jnp.nan, true)
        seen = jnp.stack([results.fitness] + [results.objectives[n] for n in
                                              evaluator.objectives], axis=-1)
        return (seen if multi else results.fitness), true

    trace = run_searches(strategy, evaluate, jax.random.key(args.seed), args.runs, args.budget)
    table = jnp.asarray(load_table().genomes, jnp.int32)  # every architecture of the benchmark
    everything = np.asarray(jax.jit(evaluate)(jax.random.key(0), table)[1], np.float64)
    feasible = ~np.isnan(everything).any(axis=1)
    if not feasible.any():
        raise UsageError(f"no architecture of the table meets {args.constraint}")
    reference = np.where(maximize, everything[feasible].min(0), everything[feasible].max(0))
    best = hypervolume(everything, reference, maximize)
    found = np.asarray(trace.true, np.float64)
    checkpoints = [q for q in (10, 30, 100, 300, 1000, 3000, 10000) if q <= args.budget]
    gaps = {str(q): round(float(np.mean([1 - hypervolume(found[r, :q], reference, maximize)
                                          / best for r in range(args.runs)])), 5)
            for q in checkpoints}
    front = pareto_front(found[0], maximize)
    _, first = np.unique(np.asarray(trace.genomes[0])[front], axis=0, return_index=True)
    names = ["test_acc", *evaluator.objectives]
    members = sorted(
        ({"arch_str": evaluator.encoding.to_arch_str(np.asarray(trace.genomes[0, i])),
          **{n: round(float(found[0, i, j]), 4) for j, n in enumerate(names)}}
         for i in front[np.sort(first)]), key=lambda m: -m["test_acc"])
    out = {
        "benchmark": "nb201", "protocol": evaluator.protocol, "dataset": args.dataset,
        "strategy": args.strategy, "objectives": names, "constraints": args.constraint,
        "runs": args.runs, "budget": args.budget, "true_front_size": int(len(
            pareto_front(everything, maximize))), "hv_gap": gaps, "front_of_run_0": members,
    }
    print(json.dumps(out, indent=None if args.compact else 2))
    return 0


def _print_result(result: Any) -> None:
    """The end of a run: the best architecture, its scores, and where everything is."""
    best, final = result.best, result.final
    print(f"search: {result.generations} generations, {result.evaluations} evaluations")
    if best is not None:
        layers = best["description"].get("layers", "")
        print(f"best: #{best['id']} fitness {best['fitness']:.4f}, {best['params']} params, "
              f"genome {best['genome']}")
        if layers:
            print(f"  layers: {json.dumps(layers)}")
    if final is not None:
        accs = ", ".join(f"{m['test_acc']:.4f}" for m in final["models"])
        print(f"retrained top {len(final['models'])} ({final['retrain_steps']} steps, train+val): "
              f"test accuracy {accs}")
        if "ensemble_test_acc" in final:
            print(f"ensemble of {final['ensemble_size']} (mean logits): test accuracy "
                  f"{final['ensemble_test_acc']:.4f}")
        print(f"exported: {result.run_dir / 'best'} (evonas.load_model('{result.run_dir}'))")
    front = getattr(result, "front", None)
    if front is not None:
        names = [o["name"] for o in front["objectives"]]
        print(f"Pareto front: {front['front_size']} architectures; {len(front['members'])} "
              f"retrained ({front['retrain_steps']} steps) and exported to "
              f"{result.run_dir / 'front'}/<id>:")
        for m in front["members"]:
            values = ", ".join(f"{n} {_format(float(m['objectives'][n]))}" for n in names)
            print(f"  #{m['id']}: {values}, test accuracy {m['test_acc']:.4f}")
    print(f"run directory: {result.run_dir}")
    if result.report is not None:
        print(f"report: {result.report}")


def cmd_run(args: argparse.Namespace) -> int:
    from evonas.experiment import Experiment, ExperimentConfig

    config = (ExperimentConfig.from_yaml(args.config) if args.config
              else ExperimentConfig.from_dict({}))
    overrides = list(args.set)
    if args.seed is not None:
        overrides.append(f"search.seed={args.seed}")
    if overrides:
        config = config.with_overrides(overrides)
    _print_result(Experiment(config, run_dir=args.run_dir).run())
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from evonas.experiment import Experiment

    _print_result(Experiment.resume(args.run_dir).run())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from evonas.report import write_report
    from evonas.store import RunDir

    RunDir(args.run_dir, readonly=True)  # a clear error for a path that is not a run
    paths = write_report(args.run_dir)
    print(f"report: {paths['html']}")
    return 0


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(header)] + [[_format(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def cmd_front(args: argparse.Namespace) -> int:
    import jax

    from evonas.experiment import ExperimentConfig
    from evonas.experiment.components import build_model_parts
    from evonas.experiment.front import (
        best_within_budgets,
        export_within_budgets,
        front_table,
        member,
        parse_budgets,
    )
    from evonas.objectives import row_value
    from evonas.store import RunDir

    run = RunDir(args.run_dir, readonly=True)
    config = ExperimentConfig.from_dict(run.config)
    with run.history as history:
        rows = history.rows()
    objectives = config.search.objective_directions
    if len(objectives) == 1:  # a single-objective run: its front against parameters
        objectives = (*objectives, ("params", False))
    budgets = [parse_budgets(text) for text in args.budget]
    for metric, _ in budgets:
        if all(math.isnan(row_value(r, metric)) for r in rows):
            recorded = sorted({k for r in rows for k in (r.get("metrics") or {})}
                              | {"params", "flops", "val_acc", "val_loss"})
            raise UsageError(f"--budget names {metric!r}, which this run did not record; "
                             f"recorded: {recorded}")
    table = front_table(rows, objectives)
    out: dict[str, Any] = {"run_dir": str(run.path), "objectives": [
        {"name": n, "direction": "max" if m else "min"} for n, m in objectives], "front": table}
    if not args.json:
        names = [n for n, _ in objectives]
        print(f"Pareto front of {run.path}: {len(table)} architectures ({', '.join(names)})")
        costs = [c for c in ("params", "flops") if c not in names]
        print(_table(["id", *names, *costs, "genome"],
                     [[r["id"], *[r["objectives"][n] for n in names],
                       *[float(r[c]) for c in costs], json.dumps(r["genome"])] for r in table]))
    chosen_all = []
    first = objectives[0][0]
    parts = None
    for metric, bounds in budgets:
        chosen = best_within_budgets(rows, config, metric, bounds)
        if args.export and any(row is not None for _, row in chosen):
            if parts is None:
                parts = build_model_parts(config)
            dataset, encoding, options = parts
            steps = args.steps or config.final.retrain_steps
            entries = export_within_budgets(
                jax.random.fold_in(jax.random.key(config.search.seed), 4), config, encoding,
                options, dataset, chosen, metric, run.path / "budgets", steps)
        else:
            entries = [{"metric": metric, "bound": b,
                        "architecture": None if row is None else member(row, objectives)}
                       for b, row in chosen]
        chosen_all.extend(entries)
        if not args.json:
            for entry, (_, row) in zip(entries, chosen):
                arch = entry["architecture"]
                if arch is None:
                    print(f"{metric} <= {entry['bound']:g}: none found: no evaluated "
                          f"architecture is within this budget")
                    continue
                tested = (f", test accuracy {arch['test_acc']:.4f} after retraining, exported "
                          f"to {run.path / 'budgets' / entry['directory']}"
                          if "test_acc" in arch else "")
                print(f"{metric} <= {entry['bound']:g}: #{arch['id']} {first} "
                      f"{arch['objectives'][first]:.4f}, {metric} "
                      f"{_format(row_value(row, metric))}{tested}")
    if budgets:
        out["budgets"] = chosen_all
    if args.json:
        print(json.dumps(_jsonable(out)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evonas", description="Evolutionary neural architecture search in JAX."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("describe", help="describe one genome of an encoding as JSON")
    p.add_argument("encoding", help="encoding name (see `evonas list`)")
    p.add_argument(
        "genome",
        help="a JSON list of integers, comma-separated integers, a JSON {gene: value} object, "
        "or the encoding's own notation (nb201: an arch string or a benchmark index)",
    )
    p.add_argument(
        "--option", "-o", action="append", default=[], metavar="KEY=VALUE",
        help="an encoding option, e.g. num_classes=100 (repeatable)",
    )
    p.add_argument("--compact", action="store_true", help="print on one line")
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser(
        "bench", help="search a tabular benchmark (NAS-Bench-201, oracle tabular protocol)"
    )
    p.add_argument("benchmark", choices=["nb201"], help="the tabular benchmark")
    p.add_argument("--strategy", default="regularized_evolution", help="see `evonas list`")
    p.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet16")
    p.add_argument("--runs", type=int, default=10, help="independent runs, vmapped")
    p.add_argument("--budget", type=int, default=300, help="evaluations per run")
    p.add_argument("--noise", type=float, default=0.0,
                   help="Gaussian noise (accuracy points) on the fitness the strategy sees")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a strategy parameter, e.g. population_size=32 (repeatable)",
    )
    p.add_argument(
        "--objective", action="append", default=[], metavar="METRIC",
        help="a table metric to minimise beside accuracy, e.g. edgegpu_latency (repeatable; "
        "with a multi-objective strategy such as nsga2)",
    )
    p.add_argument(
        "--constraint", action="append", default=[], metavar="'METRIC OP VALUE'",
        help="a hard limit, e.g. 'edgegpu_latency <= 5 ms' or 'params <= 500000' (repeatable)",
    )
    p.add_argument("--compact", action="store_true", help="print on one line")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="run a search experiment (no config: the default MNIST-1D one)")
    p.add_argument("config", nargs="?", help="a YAML config (default: the embedded experiment)")
    p.add_argument("--run-dir", help="the run directory (default: runs/<encoding>-<data>-<time>)")
    p.add_argument("--seed", type=int, help="the search seed (same as --set search.seed=N)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a config override, e.g. search.generations=4 (repeatable)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="continue a run from its last complete generation")
    p.add_argument("run_dir", help="the run directory")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("report", help="write a run's plots and HTML page (run_dir/report)")
    p.add_argument("run_dir", help="the run directory")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "front", help="a run's Pareto front, and the best architecture within budgets"
    )
    p.add_argument("run_dir", help="the run directory")
    p.add_argument(
        "--budget", action="append", default=[], metavar="METRIC=V1,V2",
        help="for each value, the best architecture with METRIC <= value, e.g. "
        "params=20000,100000 (repeatable)",
    )
    p.add_argument("--no-export", dest="export", action="store_false",
                   help="only choose; do not retrain, test and export to run_dir/budgets/")
    p.add_argument("--steps", type=int, default=None,
                   help="retraining steps (default: the run's final.retrain_steps)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_front)

    p = sub.add_parser("list", help="list encodings and strategies")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evonas`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"evonas: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:  # a config file that can't be read, a disk that can't be written
        where = f"{err.filename}: " if err.filename else ""
        print(f"evonas: error: {where}{err.strerror or err}; check the path and its permissions",
              file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
