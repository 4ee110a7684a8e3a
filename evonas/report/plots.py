"""Statistical plots of a run: fitness per generation, Pareto fronts, and which genes matter.

Figures are built with ``matplotlib.figure.Figure`` directly (the Agg canvas), never through
``pyplot``, so drawing a report changes no global backend or state of the caller's session.
Every function draws a placeholder message instead of failing when there is nothing to plot
yet, so a report of a run that has just started is complete too.
"""

from __future__ import annotations

import io
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from evonas.objectives import pareto_front
from evonas.report.genes import Genes, run_genes
from evonas.report.history import Evaluation, first_of_each
from evonas.store.atomic import atomic_write_bytes

DPI = 100
_MAX_GENE_PANELS = 48  # beyond this a panel is too small to read; later genes are left out


def render_png(fig: Figure) -> bytes:
    """``fig`` as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def save_figure(fig: Figure, path: str | Path, root: str | Path | None = None) -> Path:
    """Writes ``fig`` as a PNG atomically, never through a link (see
    :func:`evonas.store.atomic.atomic_write_bytes`; ``root``: the directory below which no link
    is followed, default the file's own)."""
    atomic_write_bytes(path, render_png(fig), root)
    return Path(path)


def placeholder(fig: Figure, message: str) -> Figure:
    """Puts ``message`` in the middle of an empty figure."""
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=12, color="0.4",
            transform=ax.transAxes)
    return fig


def best_of(evaluations: Sequence[Evaluation], maximize: bool = True) -> Evaluation | None:
    """The successful evaluation with the best fitness (the earliest on ties), or ``None``."""
    ok = [e for e in evaluations if e.ok]
    if not ok:
        return None
    sign = -1.0 if maximize else 1.0
    return min(ok, key=lambda e: (sign * e.fitness, e.id))


def fitness_progress(evaluations: Sequence[Evaluation], maximize: bool = True) -> Figure:
    """Best, median and worst fitness of each generation, and the best so far."""
    fig = Figure(figsize=(7, 4.2))
    by_gen: dict[int, list[float]] = defaultdict(list)
    for e in evaluations:
        if e.ok:
            by_gen[e.generation].append(e.fitness)
    if not by_gen:
        return placeholder(fig, "no successful evaluation yet")
    gens = sorted(by_gen)
    best_fn, worst_fn = (max, min) if maximize else (min, max)
    best = [best_fn(by_gen[g]) for g in gens]
    worst = [worst_fn(by_gen[g]) for g in gens]
    median = [float(np.median(by_gen[g])) for g in gens]
    so_far = np.maximum.accumulate(best) if maximize else np.minimum.accumulate(best)
    ax = fig.add_subplot()
    ax.fill_between(gens, worst, best, color="tab:blue", alpha=0.12, label="worst to best")
    ax.plot(gens, best, "o-", color="tab:blue", label="best")
    ax.plot(gens, median, "s--", color="tab:orange", label="median")
    ax.plot(gens, worst, "v:", color="tab:gray", label="worst")
    ax.plot(gens, so_far, "-", color="tab:green", lw=2.5, alpha=0.6, label="best so far")
    failed = Counter(e.generation for e in evaluations if not e.ok)
    if failed:
        n = sum(failed.values())
        ax.set_title(f"fitness per generation ({n} failed evaluation{'s' * (n > 1)} left out)")
    else:
        ax.set_title("fitness per generation")
    ax.set_xlabel("generation")
    ax.set_ylabel("fitness" + ("" if maximize else " (lower is better)"))
    ax.set_xticks(gens if len(gens) <= 20 else gens[:: math.ceil(len(gens) / 20)])
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def fitness_vs_cost(evaluations: Sequence[Evaluation], cost: str,
                    maximize: bool = True) -> Figure:
    """Fitness against a cost (``"params"`` or ``"flops"``) with the Pareto front marked.

    The front is the set of architectures that no other beats on fitness without costing more.
    """
    fig = Figure(figsize=(7, 4.5))
    rows = [e for e in first_of_each(evaluations) if e.ok and math.isfinite(getattr(e, cost))]
    if not rows:
        return placeholder(fig, f"no successful evaluation with a known {cost} yet")
    x = np.array([getattr(e, cost) for e in rows], dtype=np.float64)
    y = np.array([e.fitness for e in rows], dtype=np.float64)
    gen = np.array([e.generation for e in rows])
    front = pareto_front(np.stack([y, x], axis=1), [maximize, False])
    front = front[np.argsort(x[front], kind="stable")]
    ax = fig.add_subplot()
    shown = drawn(len(x))
    label = "evaluated" if len(shown) == len(x) else f"evaluated ({len(shown):,} of {len(x):,})"
    points = ax.scatter(x[shown], y[shown], c=gen[shown], cmap="viridis", s=22, alpha=0.8,
                        label=label)
    ax.step(x[front], y[front], where="post", color="tab:red", lw=1.2, alpha=0.7)
    ax.scatter(x[front], y[front], s=70, facecolors="none", edgecolors="tab:red", lw=1.5,
               label=f"Pareto front ({len(front)})")
    for i in front[:12]:  # label the front, but not so many that labels overlap into a smear
        ax.annotate(f"#{rows[i].id}", (x[i], y[i]), textcoords="offset points", xytext=(4, 4),
                    fontsize=7, color="tab:red")
    if x.min() > 0 and x.max() / x.min() > 20:
        ax.set_xscale("log")
    fig.colorbar(points, ax=ax, label="generation")
    ax.set_xlabel(cost)
    ax.set_ylabel("fitness")
    ax.set_title(f"fitness (higher is better) against {cost} (lower is better)" if maximize
                 else f"fitness (lower is better) against {cost} (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def front_plot(evaluations: Sequence[Evaluation], objectives: Sequence[tuple[str, bool]],
               tested: Mapping[int, float] | None = None) -> Figure:
    """The Pareto front over every evaluated architecture, and the hypervolume per generation.

    Left: the first objective against the second for every feasible architecture (colour:
    generation), the front in red with each member labelled ``#id`` (and its test accuracy
    after retraining when ``tested`` has it). Right: the hypervolume of everything evaluated up
    to each generation (reference: the nadir of the run's feasible points, so 0 for a single
    point). With three or more objectives the plot shows the first two; the front and the
    hypervolume use all of them.
    """
    from evonas.objectives import (
        front_rows,
        hypervolume_by_generation,
        objective_matrix,
    )

    fig = Figure(figsize=(11, 4.8))
    rows = [e.as_row() for e in evaluations]
    points = objective_matrix(rows, objectives)
    ok = ~np.isnan(points).any(axis=1)
    if not ok.any():
        return placeholder(fig, "no feasible evaluation yet")
    (ny, my), (nx, mx) = objectives[0], objectives[1]
    front = front_rows(rows, objectives)
    ax = fig.add_subplot(1, 2, 1)
    gen = np.array([r["generation"] for r in rows])[ok]
    shown = drawn(int(ok.sum()))
    pts = ax.scatter(points[ok, 1][shown], points[ok, 0][shown], c=gen[shown], cmap="viridis",
                     s=18, alpha=0.7)
    by_id = {r["id"]: i for i, r in enumerate(rows)}
    fx = np.array([points[by_id[r["id"]], 1] for r in front])
    fy = np.array([points[by_id[r["id"]], 0] for r in front])
    order = np.argsort(fx, kind="stable")
    if len(objectives) == 2:
        ax.step(fx[order], fy[order], where="post" if my != mx else "pre", color="tab:red",
                lw=1.2, alpha=0.7)
    ax.scatter(fx, fy, s=70, facecolors="none", edgecolors="tab:red", lw=1.5,
               label=f"Pareto front ({len(front)})")
    for r, x, y in zip(front, fx, fy):
        label = f"#{r['id']}"
        if tested and r["id"] in tested:
            label += f" ({tested[r['id']]:.3f})"
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7,
                    color="tab:red")
    finite = points[ok, 1]
    if finite.min() > 0 and finite.max() / finite.min() > 20:
        ax.set_xscale("log")
    fig.colorbar(pts, ax=ax, label="generation")
    ax.set_xlabel(f"{nx} ({'max' if mx else 'min'})")
    ax.set_ylabel(f"{ny} ({'max' if my else 'min'})")
    title = "Pareto front" + (" (test accuracy after retraining)" if tested else "")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax2 = fig.add_subplot(1, 2, 2)
    curve = hypervolume_by_generation(rows, objectives)
    ax2.plot([g for g, _ in curve], [h for _, h in curve], marker="o", color="tab:red")
    ax2.set_xlabel("generation")
    ax2.set_ylabel("hypervolume")
    ax2.set_title("hypervolume of everything evaluated so far", fontsize=10)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gene_names(evaluations: Sequence[Evaluation], num_genes: int) -> list[str]:
    """Gene names from a description's ``genes`` mapping when it has one name per gene, else
    ``gene_<i>`` (the space's own names, when the run's config gives it, come from
    :func:`evonas.report.genes.run_genes`)."""
    rows = [e for e in evaluations if e.genome is not None and len(e.genome) == num_genes]
    genes = run_genes(rows)
    if len(genes.names) == num_genes:
        return list(genes.names)
    return [f"gene_{i}" for i in range(num_genes)]


def drawn(count: int, limit: int = 20_000) -> np.ndarray:
    """Indices of at most ``limit`` of ``count`` points to draw (all of them below the limit;
    a fixed random subset above: the same picture every time). Statistics use every point."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(0).choice(count, limit, replace=False))


def gene_effects(evaluations: Sequence[Evaluation], genes: Genes | None = None) -> Figure:
    """One panel per gene: the fitness of every architecture by the value of that gene.

    Each value shows its individual fitnesses (jittered dots), their mean (a bar) and the count
    ``n``: a gene whose means differ by more than the spread inside each value matters.

    Args:
        evaluations: the history's rows.
        genes: the run's gene names and value labels (``evonas.report.genes.run_genes``);
            default: from the descriptions, else ``gene_<i>``.
    """
    rows = [e for e in evaluations if e.ok and e.genome is not None]
    if not rows:
        return placeholder(Figure(figsize=(7, 3)), "no successful evaluation with a genome yet")
    num_genes = Counter(len(e.genome) for e in rows).most_common(1)[0][0]
    rows = [e for e in rows if len(e.genome) == num_genes]
    if genes is None or len(genes.names) != num_genes:
        genes = run_genes(rows)
    names = list(genes.names) if len(genes.names) == num_genes else [
        f"gene_{i}" for i in range(num_genes)]
    shown = min(num_genes, _MAX_GENE_PANELS)
    cols = min(4, shown)
    nrows = math.ceil(shown / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * nrows + 0.5))
    genomes = np.array([e.genome for e in rows])
    fitness = np.array([e.fitness for e in rows])
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(rows))  # fixed: same picture
    dots = np.zeros(len(rows), bool)
    dots[drawn(len(rows), 5_000)] = True  # every point counts in the means; these are drawn
    for g in range(shown):
        ax = fig.add_subplot(nrows, cols, g + 1)
        values = np.unique(genomes[:, g])
        for k, v in enumerate(values):
            sel = genomes[:, g] == v
            ax.scatter(k + jitter[sel & dots], fitness[sel & dots], s=8, alpha=0.5,
                       color="tab:blue")
            ax.hlines(fitness[sel].mean(), k - 0.3, k + 0.3, color="tab:red", lw=2)
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(
            [f"{genes.label(g, int(v))}\nn={int((genomes[:, g] == v).sum())}"
             for v in values], fontsize=7)
        ax.set_title(names[g], fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    title = "fitness by gene value (red: mean)"
    if shown < num_genes:
        title += f"; first {shown} of {num_genes} genes"
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def describe_cost(value: Any) -> str:
    """``1234567`` as ``1.23M``: short cost labels for plots and tables."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "?"
    if not math.isfinite(value):
        return "?"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.4g}"
