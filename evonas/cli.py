"""The ``evonas`` command line.

Bad input (an unknown name, a genome outside its space, a bad option) prints one line,
``evonas: error: ...``, and exits with status 2, as argparse does for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

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


def _jsonable(value: Any) -> Any:
    """``value`` as strict JSON takes it: arrays as lists, NaN and infinities as null."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def cmd_describe(args: argparse.Namespace) -> int:
    from evonas.experiment.describe import describe

    out = describe(args.encoding, args.genome, _parse_options(args.option))
    print(json.dumps(_jsonable(out), indent=None if args.compact else 2))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from evonas.benchmarks import list_benchmarks
    from evonas.genomes import list_encodings
    from evonas.strategies import list_strategies

    listing = {"encodings": list_encodings(), "strategies": list_strategies(),
               "benchmarks": list_benchmarks()}
    if args.json:
        print(json.dumps(listing))
    else:
        for kind, names in listing.items():
            print(f"{kind}:")
            for name in names:
                print(f"  {name}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from evonas.experiment.bench import bench

    options = _parse_options(args.option)
    if args.dataset is not None:
        options["dataset"] = args.dataset
    # Every process runs the same call; the runs are sharded over all their devices.
    session = _join(args)
    with _leading(session):
        out = bench(args.benchmark, args.strategy, runs=args.runs, budget=args.budget,
                    seed=args.seed, noise=args.noise, objectives=args.objective,
                    constraints=args.constraint, params=_parse_options(args.set),
                    options=options, count=args.count)
        if session is None or session.leader:
            print(json.dumps(_jsonable(out), indent=None if args.compact else 2))
    return 0


def _print_result(result: Any) -> None:
    """The end of a run: the best architecture, its scores, and where everything is."""
    from evonas.store import RunPaths

    best, final = result.best, result.final
    if getattr(result, "already_finished", False):
        print(f"{result.run_dir} had already finished: nothing was computed; its results:")
    print(f"search: {result.generations} generations, {result.evaluations} evaluations")
    if best is not None:
        layers = best["description"].get("layers", "")
        params = f"{best['params']} params, " if best.get("params") is not None else ""
        print(f"best: #{best['id']} fitness {best['fitness']:.4f}, {params}genome "
              f"{best['genome']}")
        if layers:
            print(f"  layers: {json.dumps(layers)}")
    if final is not None and "retrain_steps" not in final:  # a tabular run: read, not trained
        print(f"top {len(final['models'])} by fitness, read from the {final['protocol']} table "
              f"{final['benchmark']!r}:")
        for m in final["models"]:
            scores = ", ".join(f"{k} {v:.4g}" for k, v in m.items() if k not in (
                "rank", "id", "genome", "fitness", "params"))
            print(f"  #{m['id']} (rank {m['rank']}): fitness {m['fitness']:.4g}, {scores}")
    elif final is not None:
        accs = ", ".join(f"{m['test_acc']:.4f}" for m in final["models"])
        print(f"retrained top {len(final['models'])} ({final['retrain_steps']} steps, train+val): "
              f"test accuracy {accs}")
        if "ensemble_test_acc" in final:
            print(f"ensemble of {final['ensemble_size']} (mean logits): test accuracy "
                  f"{final['ensemble_test_acc']:.4f}")
        print(f"exported: {RunPaths(result.run_dir).best} "
              f"(evonas.load_model('{result.run_dir}'))")
    front = getattr(result, "front", None)
    if front is not None:
        names = [o["name"] for o in front["objectives"]]
        how = (f"retrained ({front['retrain_steps']} steps, train+val) and tested"
               if front["retrain_steps"] else "read from the table")
        print(f"Pareto front: {front['front_size']} architectures; {len(front['members'])} "
              f"{how}, exported to {RunPaths(result.run_dir).front}/<id>:")
        for m in front["members"]:
            values = ", ".join(f"{n} {_format(float(m['objectives'][n]))}" for n in names)
            tested = f", test accuracy {m['test_acc']:.4f}" if "test_acc" in m else ""
            print(f"  #{m['id']}: {values}{tested}")
    print(f"run directory: {result.run_dir}")
    if result.report is not None:
        print(f"report: {result.report}")


def _outcome(result: Any) -> int:
    """0 when the run produced what it was asked for; 1 (with one line) when it produced no
    model although its final stage was asked to."""
    _print_result(result)
    if result.final is None and result.models_wanted > 0:
        print(f"evonas: error: the run produced no model: no architecture was evaluated "
              f"successfully; see {result.run_dir}", file=sys.stderr)
        return 1
    return 0


def _join(args: argparse.Namespace) -> Any:
    """The multi-process session the distributed options ask for, or None."""
    from evonas.experiment import distributed

    if getattr(args, "session", None) is None:
        args.session = distributed.join(
            args.coordinator, args.num_processes, args.process_id, detect=args.distributed,
            timeout=args.coordinator_timeout, peer_timeout=args.peer_timeout)
    return args.session


def _leading(session: Any) -> Any:
    from evonas.experiment import distributed

    return distributed.leading(session)


def _follow(session: Any) -> int:
    """A process other than 0: trains what process 0 publishes until its search ends."""
    from evonas.experiment.runner import follow_leader

    try:
        follow_leader(session)
    except RuntimeError as err:
        print(f"evonas: error: {err}", file=sys.stderr)
        return 1
    print(f"process {session.process_id} of {session.num_processes}: done (process 0 owns the "
          "run directory and finishes the run)")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from evonas.experiment import Experiment, ExperimentConfig

    def load() -> Any:
        config = (ExperimentConfig.from_yaml(args.config) if args.config
                  else ExperimentConfig.from_dict({}))
        overrides = list(args.set)
        if args.seed is not None:
            overrides.append(f"search.seed={args.seed}")
        if args.warm_start is not None:
            overrides.append(f"search.warm_start={json.dumps(args.warm_start)}")
        if args.data is not None:
            from evonas.data.doors import door_of

            door = door_of(args.data)
            overrides[:0] = [f"dataset.name={door}", f"dataset.path={json.dumps(args.data)}"]
        return config.with_overrides(overrides) if overrides else config

    # JAX joins the processes before anything touches a device; the others take the
    # experiment from process 0.
    session = _join(args)
    if session is not None and not session.leader:
        return _follow(session)
    with _leading(session):
        return _outcome(Experiment(load(), run_dir=args.run_dir, session=session).run())


def cmd_continual(args: argparse.Namespace) -> int:
    from evonas.experiment.continual import continual
    from evonas.report.continual import read_chain

    results = continual(args.configs, args.root, overrides=args.set)
    for result in results:
        _print_result(result)
    stages, why = read_chain(results[-1].run_dir)
    print(f"the chain, oldest first ({len(stages)} runs):")
    for i, stage in enumerate(stages, start=1):
        test = "" if stage.test_acc is None else f", retrained test accuracy {stage.test_acc:.4f}"
        best = "–" if stage.best is None else f"{stage.best:.4f}"
        print(f"  {i}. {stage.path.name}: {stage.evaluated} architectures in "
              f"{stage.search_seconds:.1f} s, best {best}{test}, {len(stage.front)} on the front")
    if why:
        print(f"  ({why})")
    failed = [r.run_dir for r in results if r.final is None and r.models_wanted > 0]
    if failed:
        print(f"evonas: error: {failed[0]} produced no model: no architecture was evaluated "
              "successfully", file=sys.stderr)
        return 1
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from evonas.experiment import Experiment

    session = _join(args)
    if session is not None and not session.leader:
        return _follow(session)  # process 0 alone reads the run directory
    with _leading(session):
        return _outcome(Experiment.resume(args.run_dir, compile_cache_dir=args.compile_cache_dir,
                                          session=session).run())


def cmd_report(args: argparse.Namespace) -> int:
    from evonas.report import write_report
    from evonas.store import RunDir

    RunDir(args.run_dir, readonly=True)  # a clear error for a path that is not a run
    paths = write_report(args.run_dir)
    print(f"report: {paths['html']}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from evonas.dashboard import serve

    try:
        serve(args.run_dirs, host=args.host, port=args.port,
              announce=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("evonas dashboard: stopped", flush=True)
    return 0


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _float(value: Any) -> float:
    """A cost as a float (NaN where the row has none)."""
    return float("nan") if value is None else float(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(header)] + [[_format(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def cmd_front(args: argparse.Namespace) -> int:
    from evonas.experiment.finish import front_summary, parse_budgets
    from evonas.experiment.loading import run_config
    from evonas.report.history import left_out
    from evonas.store import RunDir

    run = RunDir(args.run_dir, readonly=True)
    config = run_config(run)
    skipped: list[str] = []
    with run.history as history:
        rows = history.rows(skipped=skipped)
    if skipped:
        warnings.warn(left_out(run.paths.history, skipped), stacklevel=1)
    budgets = [parse_budgets(text) for text in args.budget]
    out = front_summary(rows, config, budgets,
                        export_to=run.paths.budgets if args.export else None, steps=args.steps,
                        legacy_keys=run.fingerprint_version < 3)
    if args.json:
        print(json.dumps(_jsonable({"run_dir": str(run.path), **out})))
        return 0
    names = [o["name"] for o in out["objectives"]]
    table = out["front"]
    print(f"Pareto front of {run.path}: {len(table)} architectures ({', '.join(names)})")
    costs = [c for c in ("params", "flops") if c not in names]
    print(_table(["id", *names, *costs, "genome"],
                 [[r["id"], *[r["objectives"][n] for n in names],
                   *[_float(r[c]) for c in costs], json.dumps(r["genome"])] for r in table]))
    first = names[0]
    for entry in out.get("budgets", []):
        arch, metric = entry["architecture"], entry["metric"]
        if arch is None:
            print(f"{metric} <= {entry['bound']:g}: none found: no evaluated "
                  f"architecture is within this budget")
            continue
        tested = (f", test accuracy {arch['test_acc']:.4f} after retraining "
                  f"({args.steps or config.final.retrain.steps} steps, train+val), exported "
                  f"to {run.paths.budgets / entry['directory']}" if "test_acc" in arch
                  and "directory" in entry else "")
        print(f"{metric} <= {entry['bound']:g}: #{arch['id']} {first} "
              f"{arch['objectives'][first]:.4f}, {metric} {_format(entry['value'])}{tested}")
    return 0


def cmd_distil(args: argparse.Namespace) -> int:
    from evonas.experiment.finish import distil_run
    from evonas.store import RunPaths

    out = distil_run(args.run_dir, student=args.student, temperature=args.temperature,
                     alpha=args.alpha, steps=args.steps)
    if args.json:
        print(json.dumps(_jsonable(out)))
        return 0
    teacher, student = out["teacher"], out["student"]
    print(f"teacher: the ensemble of #{', #'.join(map(str, teacher['members']))}, test accuracy "
          f"{teacher['test_acc']:.4f}")
    print(f"student #{student['id']} ({_format(float(student['params']))} params, "
          f"{out['steps']} steps): alone {student['alone_test_acc']:.4f}, distilled "
          f"{student['distilled_test_acc']:.4f} (T={out['temperature']:g}, "
          f"alpha={out['alpha']:g}); exported to {RunPaths(args.run_dir).distilled}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from evonas.experiment.finish import prune_run
    from evonas.store import RunPaths

    out = prune_run(args.run_dir, mode=args.mode, sparsity=args.sparsity, steps=args.steps,
                    source=args.source)
    if args.json:
        print(json.dumps(_jsonable(out)))
        return 0
    print(f"{out['mode']} pruning to sparsity {out['sparsity']:g}, {out['steps']} fine-tuning "
          f"steps; exported to {RunPaths(args.run_dir).pruned}")
    print(_table(["", "params", "non-zero", "flops", "latency ms", "test acc"],
                 [[side, float(out[side]["params"]), float(out[side]["nonzero_params"]),
                   out[side]["flops"], out[side]["latency_ms"] or float("nan"),
                   out[side]["test_acc"]] for side in ("before", "after")]))
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from evonas.experiment.finish import finetune_run
    from evonas.store import RunPaths

    out = finetune_run(args.run_dir, args.data, mode=args.mode, blocks=args.blocks,
                       steps=args.steps, learning_rate=args.learning_rate,
                       body_lr_scale=args.body_lr_scale, seed=args.seed, source=args.source,
                       head_init=args.head_init)
    if args.json:
        print(json.dumps(_jsonable(out)))
        return 0
    label = f"last{out['blocks']}" if out["mode"] == "last" else out["mode"]
    print(f"{out['mode']} fine-tuning of {out['source']} on {out['data']['name']} "
          f"({len(out['data']['classes'])} classes{', a new head' if out['new_head'] else ''}): "
          f"{out['steps']} steps, {_format(float(out['trainable_params']))} of "
          f"{_format(float(out['params']))} parameters trained; test accuracy "
          f"{out['test_acc']:.4f}; exported to {RunPaths(args.run_dir).finetuned / label}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from evonas.experiment.export import export_for_serving

    platforms = [p for p in args.platforms.split(",") if p.strip()]
    path = export_for_serving(args.path, platforms)
    print(f"serving model: {path} (load it with jax.export.deserialize; see "
          "examples/serve_stablehlo.py)")
    return 0


def _default(section: str, field: str) -> Any:
    """A final step's default, from its config dataclass (the CLI repeats none)."""
    from evonas.experiment import config

    return getattr(getattr(config, section)(), field)


def _describe_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas describe``'s arguments."""
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


def _bench_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas bench``'s arguments."""
    p.add_argument("benchmark", help="a registered benchmark (see `evonas list`), e.g. nb201")
    p.add_argument("--strategy", default="regularized_evolution", help="see `evonas list`")
    p.add_argument("--dataset", default=None,
                   help="the benchmark's dataset option (nb201: cifar10, cifar100, imagenet16)")
    p.add_argument(
        "--option", "-o", action="append", default=[], metavar="KEY=VALUE",
        help="an option of the benchmark's factory (repeatable)",
    )
    p.add_argument("--count", choices=["queries", "unique"], default="queries",
                   help="what the budget counts: every query, or distinct architectures "
                   "(isomorphic ones counted once where the encoding says which)")
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


def _run_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas run``'s arguments."""
    p.add_argument("config", nargs="?", help="a YAML config (default: the embedded experiment)")
    p.add_argument("--run-dir", help="the run directory (default: runs/<encoding>-<data>-<time>)")
    p.add_argument("--seed", type=int, help="the search seed (same as --set search.seed=N)")
    p.add_argument("--data", metavar="PATH",
                   help="your data: an .npz (x_train, y_train, ...), a .csv (--set "
                        "dataset.label=COLUMN), a folder of class folders of images, or a "
                        "folder of MNIST-format IDX files")
    p.add_argument("--warm-start", metavar="DIR",
                   help="start from an earlier run of the same search space: its best "
                   "architectures or its distribution, evaluated again on this run's data (same "
                   "as --set search.warm_start=DIR)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="a config override, e.g. search.generations=4 (repeatable)",
    )
    p.set_defaults(func=cmd_run)


def _continual_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas continual``'s arguments."""
    p.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="two or more YAML experiments of one search space, in order: new data, "
                   "new objectives or constraints, another strategy")
    p.add_argument("--root", required=True, metavar="DIR",
                   help="where the runs go, one per experiment (DIR/<i>-<file name>); run the "
                   "same command again to continue an interrupted chain")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for every experiment (repeatable)")
    p.set_defaults(func=cmd_continual)


def _resume_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas resume``'s arguments."""
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--compile-cache-dir", default="auto", metavar="DIR",
                   help="the persistent compilation cache: auto (your cache directory, the "
                   "default), a directory, or off; never taken from the run directory's "
                   "config.yaml, which may come from someone else")
    p.set_defaults(func=cmd_resume)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas report``'s arguments."""
    p.add_argument("run_dir", help="the run directory")
    p.set_defaults(func=cmd_report)


def _dashboard_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas dashboard``'s arguments."""
    p.add_argument("run_dirs", nargs="+", metavar="DIR", help="run directories, finished or "
                   "still running (several are overlaid)")
    p.add_argument("--port", type=int, default=8050,
                   help="TCP port (default 8050; 0: any free port, printed)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 "
                   "lets anyone who can reach this machine read the runs)")
    p.set_defaults(func=cmd_dashboard)


def _front_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas front``'s arguments."""
    p.add_argument("run_dir", help="the run directory")
    p.add_argument(
        "--budget", action="append", default=[], metavar="METRIC=V1,V2",
        help="for each value, the best architecture with METRIC <= value, e.g. "
        "params=20000,100000 (repeatable)",
    )
    p.add_argument("--no-export", dest="export", action="store_false",
                   help="only choose; do not retrain, test and export to run_dir/budgets/")
    _steps_and_json(p, "retraining steps (default: the run's final.retrain.steps)", cmd_front)


def _steps_and_json(p: argparse.ArgumentParser, steps: str, command: Any) -> None:
    """The ``--steps`` and ``--json`` of a command that trains on a finished run, and the
    command itself."""
    p.add_argument("--steps", type=int, default=None, help=steps)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=command)


def _distil_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas distil``'s arguments."""
    p.add_argument("run_dir", help="the run directory (its final stage kept an ensemble)")
    p.add_argument("--student", type=int, default=None, metavar="ID",
                   help="the history id of the architecture to train (default: the best)")
    p.add_argument("--temperature", type=float, default=None,
                   help="softmax temperature of teacher and student (default "
                   f"{_default('DistilConfig', 'temperature')})")
    p.add_argument("--alpha", type=float, default=None,
                   help="weight of the soft targets against the labels (default "
                   f"{_default('DistilConfig', 'alpha')})")
    _steps_and_json(p, "optimiser steps (default: the run's final.retrain.steps)", cmd_distil)


def _prune_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas prune``'s arguments."""
    p.add_argument("run_dir", help="the run directory")
    p.add_argument("--mode", default=None, choices=["structured", "unstructured"],
                   help="structured: fewer units/channels, a smaller genome of the space; "
                   "unstructured: magnitude masks (default "
                   f"{_default('PruneConfig', 'mode')})")
    p.add_argument("--sparsity", type=float, default=None,
                   help="share of parameters to remove, in (0, 1) (default "
                   f"{_default('PruneConfig', 'sparsity')})")
    p.add_argument("--source", default="best", choices=["best", "distilled"],
                   help="which exported model to prune (default best)")
    _steps_and_json(p, "fine-tuning steps (default: a quarter of final.retrain.steps)",
                    cmd_prune)


def _finetune_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas finetune``'s arguments (the mode is checked by ``FinetuneSettings``: building
    the parser imports nothing that could start a JAX backend before ``jax.distributed``)."""
    p.add_argument("run_dir", help="a finished run directory")
    p.add_argument("--data", required=True, metavar="PATH|NAME",
                   help="the new data: an .npz, a .csv, a folder of class folders, a folder of "
                   "IDX files, or a dataset name (fashion_mnist, mnist1d, tfds:<name>)")
    p.add_argument("--mode", default="full",
                   help="full: every parameter; last: the last --blocks blocks and the head; "
                   "head: the head alone through the frozen network; probe: a linear probe on "
                   "frozen features; scratch: the same architecture from scratch, the baseline "
                   "(default full)")
    p.add_argument("--blocks", type=int, default=1, help="--mode last: how many blocks train")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="the head's (default: the run's train.learning_rate)")
    p.add_argument("--body-lr-scale", type=float, default=0.1,
                   help="the pretrained parameters' learning rate over the head's (default 0.1)")
    p.add_argument("--head-init", default="auto",
                   help="how a new head starts in full, last and head: probe (fitted on the "
                   "frozen features first, LP-FT), fresh, or auto: probe where the head is "
                   "linear (default)")
    p.add_argument("--seed", type=int, default=None, help="default: the run's search.seed")
    p.add_argument("--source", default="best", metavar="MODEL",
                   help="the exported model inside the run: best (default), distilled, pruned, "
                   "or a path such as front/12")
    _steps_and_json(p, "optimiser steps (default: a quarter of final.retrain.steps)",
                    cmd_finetune)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas export``'s arguments."""
    p.add_argument("path", help="a run directory (its best/) or an exported model's directory")
    p.add_argument("--platforms", default="cpu,cuda",
                   help="comma-separated platforms to lower for: cpu, cuda, tpu (default "
                   "cpu,cuda)")
    p.set_defaults(func=cmd_export)


def _list_arguments(p: argparse.ArgumentParser) -> None:
    """``evonas list``'s arguments."""
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_list)


# name, help, takes the multi-process options, its arguments
_COMMANDS: tuple[tuple[str, str, bool, Any], ...] = (
    ("describe", "describe one genome of an encoding as JSON", False, _describe_arguments),
    ("bench", "search a tabular benchmark many times (NAS-Bench-201 or a plug-in's)", True,
     _bench_arguments),
    ("run", "run a search experiment (no config: the default MNIST-1D one)", True,
     _run_arguments),
    ("resume", "continue a run from its last complete generation", True, _resume_arguments),
    ("continual", "a chain of runs, each warm-started from the one before (new data, "
     "objectives or budgets); the last report shows how the front moved", False,
     _continual_arguments),
    ("report", "write a run's plots and HTML page (run_dir/report)", False, _report_arguments),
    ("dashboard", "a live web page of one or more run directories (read-only; this machine "
     "only unless --host says otherwise)", False, _dashboard_arguments),
    ("front", "a run's Pareto front, and the best architecture within budgets", False,
     _front_arguments),
    ("distil", "distil a finished run's ensemble into one network (run_dir/distilled)", False,
     _distil_arguments),
    ("prune", "prune a finished run's best (or distilled) network, fine-tune it "
     "(run_dir/pruned)", False, _prune_arguments),
    ("finetune", "fine-tune a finished run's network on new data: full, last blocks, head, "
     "linear probe, or from scratch (run_dir/finetuned/<mode>)", False, _finetune_arguments),
    ("export", "write an exported model as StableHLO for serving (model.stablehlo beside its "
     "params)", False, _export_arguments),
    ("list", "list encodings and strategies", False, _list_arguments),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evonas", description="Evolutionary neural architecture search in JAX."
    )
    plugin = argparse.ArgumentParser(add_help=False)
    plugin.add_argument(
        "--plugin", action="append", default=[], metavar="FILE.py|MODULE",
        help="import a plug-in that registers encodings, strategies or benchmarks (repeatable; "
        "installed packages are found through their entry points without it)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    multi = argparse.ArgumentParser(add_help=False)
    group = multi.add_argument_group(
        "multi-process runs (jax.distributed): start the same command on every process; "
        "process 0 owns the run directory, the others train its populations")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="process 0's address; it serves the coordinator on PORT")
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    group.add_argument("--process-id", type=int, metavar="I", help="this process, 0..N-1")
    group.add_argument("--distributed", action="store_true",
                       help="let JAX detect the cluster (SLURM, Cloud TPU, Open MPI) instead")
    group.add_argument("--coordinator-timeout", type=float, default=60.0, metavar="S",
                       help="seconds to reach the coordinator and for every process to join "
                       "(default 60)")
    group.add_argument("--peer-timeout", type=float, default=30.0, metavar="S",
                       help="seconds without a process's heartbeat before the run stops "
                       "(default 30)")

    def command(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parents = [plugin, *kwargs.pop("parents", [])]
        return sub.add_parser(name, parents=parents, **kwargs)  # every command takes --plugin

    for name, text, distributed, arguments in _COMMANDS:
        arguments(command(name, help=text, parents=[multi] if distributed else []))
    return parser


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any,
                      **kwargs: Any) -> str:
    """Warnings as the command line prints them: one line, no source."""
    kind = "note" if issubclass(category, FutureWarning) else "warning"
    return f"evonas: {kind}: {str(message).strip().splitlines()[0]}\n"


def _quiet_closed_loops(hook: Any) -> Any:
    """``hook`` without the "Event loop is closed" errors of tensorstore's I/O callbacks, which
    arrive after an orbax write failed and its event loop was closed: evonas has reported the
    failure itself, in one line."""
    if getattr(hook, "evonas_quiet", False):
        return hook

    def quiet(unraisable: Any) -> None:
        value = unraisable.exc_value
        if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
            return
        hook(unraisable)

    quiet.evonas_quiet = True  # type: ignore[attr-defined]
    return quiet


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evonas`` console script."""
    warnings.formatwarning = _one_line_warning
    # orbax logs its internals through absl (a missing metadata file of a step it is writing,
    # the traceback of each of its threads when a write fails): evonas turns every failed
    # write into its own one line, which says what to do.
    logging.getLogger("absl").setLevel(logging.CRITICAL)
    sys.unraisablehook = _quiet_closed_loops(sys.unraisablehook)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if hasattr(args, "coordinator"):  # join before a plug-in's import can start JAX
            _join(args)
        if args.plugin:
            from evonas.experiment.plugins import load_plugins

            load_plugins(args.plugin)
        return args.func(args)
    except ValueError as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"evonas: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as err:
        run_dir, kept = getattr(err, "run_dir", None), getattr(err, "generations", None)
        if run_dir is not None and kept:
            print(f"evonas: interrupted: {run_dir} keeps {kept} finished generation"
                  f"{'s' if kept > 1 else ''}; `evonas resume {run_dir}` continues the run",
                  file=sys.stderr)
        elif run_dir is not None:
            print(f"evonas: interrupted before the first generation finished; {run_dir} was "
                  "removed", file=sys.stderr)
        else:
            print("evonas: interrupted", file=sys.stderr)
        # The run directory is closed and consistent; leave at once rather than let the
        # interpreter's shutdown meet native threads stopped half-way (they abort the process).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except OSError as err:  # a config file that can't be read, a disk that can't be written
        where = f"{err.filename}: " if err.filename else ""
        print(f"evonas: error: {where}{err.strerror or err}; check the path and its permissions",
              file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
