"""``write_report``: every plot and the HTML page of a run directory, finished or still running."""

from __future__ import annotations

import datetime
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

from evonas.report import continual, drawings, plots
from evonas.report.genes import run_genes
from evonas.report.history import left_out, read_beliefs, read_snapshot
from evonas.report.html import TOP_K, render_html
from evonas.report.views import read_config, run_data
from evonas.store.atomic import atomic_write_bytes, atomic_write_text, read_json, safe_dir
from evonas.store.layout import DISTIL_FILE, PRUNE_FILE, REPORT_INDEX, RunPaths

# (key, file name, caption), in the order the page shows them.
FIGURES = (
    ("progress", "progress.png", "Best, median and worst fitness per generation"),
    ("pareto_params", "pareto_params.png", "Fitness against parameters, Pareto front in red"),
    ("pareto_flops", "pareto_flops.png", "Fitness against FLOPs, Pareto front in red"),
    ("genes", "genes.png", "Which genes matter: fitness by gene value"),
    ("lineage", "lineage.png", "Lineage of the best architecture"),
    ("architecture", "architecture.png", "The best architecture"),
)


def _read_front(run_dir: Path) -> dict[str, Any] | None:
    """``front/front.json``, whose values may be anything (a run directory may come from someone
    else): the page escapes every one of them, and the plot takes only numeric test scores."""
    return read_json(RunPaths(run_dir).front_file)


def _tested(front: dict[str, Any] | None) -> dict[int, float]:
    """Member id -> test accuracy, for the members whose both are numbers."""
    out: dict[int, float] = {}
    members = (front or {}).get("members")
    for m in members if isinstance(members, list) else []:
        try:
            out[int(m["id"])] = float(m["test_acc"])
        except (TypeError, ValueError, KeyError, OverflowError):
            continue
    return out


def _estimates(evaluations: list[Any]) -> str:
    """``trained, 25 steps (30), trained, 200 steps (4), oneshot (200)``: how the rows' fitness
    was obtained (with the steps each architecture's own weights trained), by count."""
    counts: dict[tuple[str, int], int] = {}
    for e in evaluations:
        if e.estimate is not None:
            steps = int(e.fidelity) if math.isfinite(e.fidelity) and e.fidelity > 0 else 0
            counts[e.estimate, steps] = counts.get((e.estimate, steps), 0) + 1
    return "; ".join(f"{name}{f', {steps} steps' if steps else ''} ({n})"
                     for (name, steps), n in sorted(counts.items())) or "–"


def write_report(run_dir: str | os.PathLike, out_dir: str | os.PathLike | None = None
                 ) -> dict[str, Path]:
    """Writes the report of ``run_dir`` into ``out_dir`` (default ``run_dir/report``).

    Reads ``history.sqlite`` read-only, so it is safe while the run is going; an empty or
    partial history gives placeholder plots rather than an error.

    Returns:
        The written files by key: ``progress``, ``pareto_params``, ``pareto_flops``, ``genes``,
        ``lineage``, ``architecture`` (PNGs), ``front`` (PNG, runs with two or more
        objectives), ``continual`` (PNG) and ``continual_json`` (runs warm-started from an
        earlier run: :mod:`evonas.report.continual`) and ``html`` (``index.html``).

    Raises:
        ValueError: when ``run_dir`` is not a directory.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(
            f"run directory {os.fspath(run_dir)!r} does not exist; pass the directory a run "
            "wrote (it holds config.yaml and history.sqlite)"
        )
    out = Path(out_dir) if out_dir is not None else RunPaths(run).report
    root = run if out_dir is None else out  # no write follows a link below it
    if out_dir is not None:
        out.mkdir(parents=True, exist_ok=True)
    safe_dir(out, root)
    config_text, config, objectives = read_config(run)
    maximize = objectives[0][1]
    snapshot = read_snapshot(run, timeout=10.0)  # one read: rows and generations agree
    evaluations = snapshot.evaluations
    if snapshot.skipped:
        warnings.warn(left_out(RunPaths(run).history, snapshot.skipped), stacklevel=2)
    genes = run_genes(evaluations, config)
    best = plots.best_of(evaluations, maximize)
    figures = {
        "progress": plots.fitness_progress(evaluations, maximize),
        "pareto_params": plots.fitness_vs_cost(evaluations, "params", maximize),
        "pareto_flops": plots.fitness_vs_cost(evaluations, "flops", maximize),
        "genes": plots.gene_effects(evaluations, genes),
        "lineage": drawings.lineage(best, evaluations),
        "architecture": drawings.architecture(best),
    }
    shown = list(FIGURES)
    paths = {}
    front = _read_front(run)
    if len(objectives) > 1:
        figures["front"] = plots.front_plot(evaluations, objectives, _tested(front))
        names = " against ".join(n for n, _ in objectives[:2])
        shown.insert(1, ("front", "front.png", f"Pareto front ({names}) over every evaluated "
                         "architecture, and the hypervolume per generation"))
    chain, why = continual.read_chain(run)
    sections = []
    if len(chain) > 1:  # warm-started from an earlier run: how the front moved along the chain
        rows = continual.chain_rows(chain)
        figures["continual"] = continual.chain_figure(chain)
        shown.insert(0, ("continual", "continual.png", "The front of each run of the chain, "
                         "oldest lightest"))
        sections.append(continual.chain_section(rows, why))
        atomic_write_text(out / continual.FILE, json.dumps(
            {"runs": rows, "note": why}, indent=1) + "\n", root)
        paths["continual_json"] = out / continual.FILE
    images = {key: plots.render_png(figures[key]) for key, _, _ in shown}
    for key, name, _ in shown:
        atomic_write_bytes(out / name, images[key], root)
        paths[key] = out / name

    ok = [e for e in evaluations if e.ok]
    sign = -1.0 if maximize else 1.0
    top = sorted(ok, key=lambda e: (sign * e.fitness, e.id))[:TOP_K]
    written = datetime.datetime.now().isoformat(timespec="seconds")
    views = {"mode": "report", "runs": [run_data(run, evaluations, snapshot.generations)]}
    summary = {
        "evaluations": len(evaluations),
        "generations": len({e.generation for e in evaluations}),
        "failed": len(evaluations) - len(ok),
        "best": "–" if best is None else f"{best.fitness:.4g} (#{best.id})",
        "fitness estimated by": _estimates(evaluations),
        "written": written,
    }
    if snapshot.skipped:
        summary["rows left out"] = left_out(RunPaths(run).history, snapshot.skipped)
    page = render_html(run.resolve().name, [(caption, images[key]) for key, _, caption in shown],
                       top, summary, config_text, front, read_beliefs(run),
                       read_json(RunPaths(run).distilled / DISTIL_FILE),
                       read_json(RunPaths(run).pruned / PRUNE_FILE), views,
                       read_json(RunPaths(run).final), snapshot.generations, sections)
    index = out / REPORT_INDEX
    atomic_write_text(index, page, root)
    paths["html"] = index
    return paths
