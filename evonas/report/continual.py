"""Continual optimisation in the report: how the front moved along a chain of warm-started runs.

A run started with ``search.warm_start`` keeps where it started from (``warm_start.json``); the
earlier run may itself have been warm-started, and so on. :func:`read_chain` follows those links
back from a run and summarises every run of the chain, oldest first: its data and constraints,
what it evaluated, its best, its front of fitness against parameters, and how that front relates
to the previous run's (architectures kept, new ones, ones the warm start handed over) with a
hypervolume on a reference shared by the whole chain. ``evonas report`` shows it for any run with
an earlier one, ``evonas continual`` (:mod:`evonas.experiment.continual`) builds such chains.

Every run directory of a chain may come from someone else: each is read read-only, nothing in it
is executed, a link that leads nowhere or back into the chain ends it (noted, never an error),
and the page escapes every value.
"""

from __future__ import annotations

import dataclasses
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from evonas.objectives import hypervolume, pareto_front
from evonas.report.history import read_snapshot
from evonas.report.views import plain, read_config
from evonas.store.atomic import read_json
from evonas.store.layout import RunPaths

MAX_CHAIN = 32  # runs followed back from one run
FILE = "continual.json"  # the chain's table, beside the report's page


@dataclasses.dataclass(frozen=True)
class Stage:
    """One run of a chain, as the report shows it.

    Attributes:
        path: its directory.
        data: what it searched (``name``, ``path``, ``digest`` of its ``dataset`` section).
        objective: its first objective's name and whether it is maximised.
        constraints: its ``search.constraints``.
        evaluated: its successful evaluations (each architecture once).
        search_seconds: the wall seconds of its committed generations.
        best: its best fitness (None when nothing succeeded).
        test_acc: its retrained best's test accuracy (``best/final.json``), or None.
        front: ``[(genome, fitness, params)]``: its non-dominated architectures in fitness
            against parameters, best fitness first.
        seeded: the genomes its warm start handed over (empty for a cold start).
    """

    path: Path
    data: dict[str, Any]
    objective: tuple[str, bool]
    constraints: list[str]
    evaluated: int
    search_seconds: float
    best: float | None
    test_acc: float | None
    front: list[tuple[tuple[int, ...], float, float]]
    seeded: frozenset[tuple[int, ...]]


def earlier_run(run_dir: Path) -> tuple[Path | None, str | None]:
    """The run ``run_dir`` was warm-started from: ``(its directory, None)``, ``(None, None)``
    for a cold start, or ``(None, why)`` when the link can't be followed."""
    kept = read_json(RunPaths(run_dir).warm_start)
    if kept is None:
        return None, None
    source = kept.get("resolved") or kept.get("source") if isinstance(kept, dict) else None
    if not isinstance(source, str) or not source:
        return None, f"{RunPaths(run_dir).warm_start} names no earlier run"
    path = Path(os.path.expanduser(source))
    candidates = [path] if path.is_absolute() else [Path.cwd() / path, run_dir.parent / path]
    for candidate in candidates:
        if RunPaths(candidate).history.is_file():
            return candidate.resolve(), None
    return None, f"the earlier run {source!r} that {run_dir.name} started from is not there"


def read_chain(run_dir: str | os.PathLike) -> tuple[list[Stage], str | None]:
    """The chain of runs ending at ``run_dir``, oldest first, and why it ends where it does
    when that is not a cold start (a missing or unreadable earlier run, a cycle, its length)."""
    path, paths, why = Path(run_dir).resolve(), [], None
    while True:
        paths.append(path)
        earlier, why = earlier_run(path)
        if earlier is None:
            break
        if earlier in paths:
            why = f"{earlier} is warm-started from a run after it: the chain stops there"
            break
        if len(paths) == MAX_CHAIN:
            why = f"the chain is longer than {MAX_CHAIN} runs: the oldest are left out"
            break
        path = earlier
    stages = []
    for p in reversed(paths):
        try:
            stages.append(read_stage(p))
        except (OSError, ValueError) as err:  # a damaged earlier run: keep the later ones
            why = f"{p} can't be read ({str(err).splitlines()[0] if str(err) else err!r})"
            stages.clear()
    return stages, why


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def read_stage(run_dir: Path) -> Stage:
    """One run's summary (:class:`Stage`)."""
    _, config, objectives = read_config(run_dir)
    config = config if isinstance(config, dict) else {}
    dataset = config.get("dataset") if isinstance(config.get("dataset"), dict) else {}
    search = config.get("search") if isinstance(config.get("search"), dict) else {}
    constraints = search.get("constraints") if isinstance(search.get("constraints"), list) else []
    snapshot = read_snapshot(run_dir, timeout=10.0)
    objective = objectives[0]
    ok, seen = [], set()
    for e in snapshot.evaluations:
        if e.ok and e.genome is not None and e.genome not in seen:
            seen.add(e.genome)
            ok.append(e)
    points = np.asarray([[e.fitness, e.params] for e in ok], np.float64).reshape(-1, 2)
    keep = pareto_front(points, [objective[1], False]) if len(ok) else []
    sign = -1.0 if objective[1] else 1.0
    front = sorted(((ok[i].genome, float(ok[i].fitness), float(ok[i].params)) for i in keep),
                   key=lambda m: (sign * m[1], m[2]))
    best = (max if objective[1] else min)((e.fitness for e in ok), default=None)
    kept = read_json(RunPaths(run_dir).warm_start)
    seeded = set()
    for genome in (kept.get("genomes") if isinstance(kept, dict) else None) or []:
        if isinstance(genome, list) and all(isinstance(v, int) for v in genome):
            seeded.add(tuple(genome))
    final = read_json(RunPaths(run_dir).final)
    seconds = sum(_number(g.get("wall_seconds")) or 0.0 for g in snapshot.generations)
    return Stage(
        path=run_dir,
        data={k: plain(dataset.get(k)) for k in ("name", "path", "digest")},
        objective=(str(objective[0]), bool(objective[1])),
        constraints=[str(plain(c)) for c in constraints],
        evaluated=len(ok), search_seconds=float(seconds),
        best=None if best is None else float(best),
        test_acc=_number(final.get("best_test_acc")) if isinstance(final, dict) else None,
        front=front, seeded=frozenset(seeded))


def chain_rows(stages: Sequence[Stage]) -> list[dict[str, Any]]:
    """Per run, oldest first, what the table and ``continual.json`` show: its facts and how its
    front moved from the previous run's (``kept``: front architectures that were on the
    previous front; ``from_warm_start``: front architectures the warm start handed over;
    ``hypervolume``: of fitness against log10 parameters, from a reference shared by the
    chain: the worst fitness and the most parameters on any of its fronts)."""
    directions = {s.objective[1] for s in stages}
    members = [(f, math.log10(max(p, 1.0))) for s in stages for _, f, p in s.front]
    reference = None
    if len(directions) == 1 and members:
        maximize = directions.pop()
        fits = [f for f, _ in members]
        width = max(max(fits) - min(fits), 1e-9)
        # a margin beyond the worst, so the worst front member still adds volume
        reference = np.asarray([min(fits) - 0.05 * width if maximize else max(fits) + 0.05 * width,
                                max(p for _, p in members) + 0.05])
    rows, previous = [], None
    for i, s in enumerate(stages):
        genomes = [g for g, _, _ in s.front]
        volume = None
        if reference is not None:
            points = np.asarray([[f, math.log10(max(p, 1.0))] for _, f, p in s.front])
            volume = hypervolume(points.reshape(-1, 2), reference, [s.objective[1], False])
        rows.append({
            "run": s.path.name, "path": str(s.path), "data": s.data,
            "objective": list(s.objective), "constraints": s.constraints,
            "evaluated": s.evaluated, "search_seconds": round(s.search_seconds, 2),
            "best": s.best, "test_acc": s.test_acc,
            "front": [{"genome": list(g), "fitness": f, "params": p} for g, f, p in s.front],
            "front_size": len(genomes),
            "kept": None if previous is None else sum(g in previous for g in genomes),
            "from_warm_start": sum(g in s.seeded for g in genomes) if i else None,
            "best_change": (None if i == 0 or s.best is None or stages[i - 1].best is None
                            else s.best - stages[i - 1].best),
            "hypervolume": volume,
        })
        previous = set(genomes)
    return rows


def chain_figure(stages: Sequence[Stage]) -> Figure:
    """Every run's front of fitness against parameters, oldest lightest (yellow to purple)."""
    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    colors = matplotlib.colormaps["viridis_r"](np.linspace(0.15, 0.95, max(len(stages), 2)))
    for i, s in enumerate(stages):
        if not s.front:
            continue
        pts = sorted((p, f) for _, f, p in s.front)
        xs, ys = [p for p, _ in pts], [f for _, f in pts]
        ax.step(xs, ys, where="post", color=colors[i], lw=1.5, alpha=0.9)
        ax.scatter(xs, ys, color=colors[i], s=18, zorder=3,
                   label=f"{i + 1}. {s.path.name[:40]}")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    name = stages[-1].objective[0] if stages else "fitness"
    ax.set_ylabel(name)
    ax.set_title("Front of each run of the chain (each on its own data)")
    if any(s.front for s in stages):
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def chain_section(rows: Sequence[Mapping[str, Any]], why: str | None) -> str:
    """The report's section: one table row per run of the chain (every value escaped)."""
    def esc(value: Any) -> str:
        return html.escape(_fmt(value))

    body = []
    for i, r in enumerate(rows):
        data = r["data"]
        where = data.get("path") or data.get("name")
        digest = str(data.get("digest") or "")[:8]
        body.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                esc(i + 1), esc(r["run"]), esc(f"{where} ({digest})" if digest else where),
                esc("; ".join(r["constraints"]) or "–"), esc(r["evaluated"]),
                esc(round(r["search_seconds"], 1)), esc(r["best"]),
                esc(r["best_change"] if r["best_change"] is None else f"{r['best_change']:+.4f}"),
                esc(r["test_acc"]), esc(r["front_size"]), esc(r["kept"]),
                esc(r["from_warm_start"]), esc(r["hypervolume"]))) + "</tr>")
    head = "".join(f"<th>{html.escape(h)}</th>" for h in (
        "#", "run", "data", "constraints", "evaluated", "search s", "best", "change",
        "retrained test acc", "front", "kept from previous front", "from the warm start",
        "hypervolume"))
    note = f"<p>{html.escape(why)}</p>" if why else ""
    return (f"<h2>Continual optimisation: how the front moved</h2>\n<p>This run is the last of "
            f"{len(rows)} runs, each warm-started from the one before (fitness is each run's own, "
            "on its own data; the hypervolume is of fitness against log10 parameters from one "
            "reference for the whole chain).</p>\n"
            f"{note}<table><tr>{head}</tr>{''.join(body)}</table>")
