"""Diagrams of the best architecture: its lineage and the network itself, from its description.

Known description layouts are drawn as networks: ``layers`` (a chain, as the MLP and CNN
encodings describe themselves) and ``nodes`` (a cell DAG, as NAS-Bench-201 does). Any other
layout is drawn as a list of boxes, one per key, so a new encoding gets a readable picture
without code here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

from evonas.report.history import Evaluation
from evonas.report.plots import describe_cost, placeholder

MAX_ANCESTRY_DEPTH = 12  # generations back from the best; older ancestors are summarised
MAX_ANCESTORS = 60
_BOX = {"boxstyle": "round,pad=0.4", "fc": "#eef3fb", "ec": "#4a6fa5"}
_BEST_BOX = {"boxstyle": "round,pad=0.4", "fc": "#fde8d7", "ec": "#d9622b", "lw": 1.8}


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _connect(ax: Any, source: Any, target: Any, rad: float = 0.0) -> None:
    """An arrow from one boxed text to another, clipped to the two boxes' outlines.

    Drawn above the texts (``zorder``): a text positions its box only when it is drawn, and
    the arrow clips against those boxes when it is drawn after them.
    """
    ax.add_patch(FancyArrowPatch(
        source.get_position(), target.get_position(), transform=ax.transData,
        patchA=source.get_bbox_patch(), patchB=target.get_bbox_patch(), shrinkA=1, shrinkB=1,
        arrowstyle="-|>", mutation_scale=12, color="0.4", zorder=4,
        connectionstyle=f"arc3,rad={rad}"))


def ancestry(best: Evaluation, evaluations: Sequence[Evaluation]) -> list[list[Evaluation]]:
    """The best and its recorded ancestors, level by level (``[0]`` is ``[best]``).

    An ancestor reached by two paths appears once, at its nearest level. Parents not in the
    history (not yet written, or from before a resume) are skipped.
    """
    by_id = {e.id: e for e in evaluations}
    levels, seen, count = [[best]], {best.id}, 1
    while len(levels) <= MAX_ANCESTRY_DEPTH and count < MAX_ANCESTORS:
        nxt = []
        for child in levels[-1]:
            for pid in child.parents:
                if pid in by_id and pid not in seen and count < MAX_ANCESTORS:
                    seen.add(pid)
                    nxt.append(by_id[pid])
                    count += 1
        if not nxt:
            break
        levels.append(sorted(nxt, key=lambda e: e.id))
    return levels


def lineage(best: Evaluation | None, evaluations: Sequence[Evaluation]) -> Figure:
    """The best architecture's family tree: oldest ancestors on top, arrows parent to child."""
    if best is None:
        return placeholder(Figure(figsize=(7, 3)), "no successful evaluation yet")
    levels = ancestry(best, evaluations)
    width = max(len(level) for level in levels)
    fig = Figure(figsize=(max(5.0, 1.9 * width), max(2.5, 1.25 * len(levels) + 0.8)))
    ax = fig.add_subplot()
    ax.set_axis_off()
    depth = len(levels) - 1
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.5, depth + 0.5)
    boxes: dict[int, Any] = {}
    for d, level in enumerate(levels):
        for k, e in enumerate(level):
            boxes[e.id] = ax.text(
                (k + 0.5) / len(level), d, f"#{e.id} (gen {e.generation})\nfitness {e.fitness:.4g}",
                ha="center", va="center", fontsize=8, bbox=_BEST_BOX if e is best else _BOX)
    for level in levels:
        for child in level:
            for pid in child.parents:
                if pid in boxes and pid != child.id:
                    _connect(ax, boxes[pid], boxes[child.id])
    title = f"lineage of the best architecture #{best.id}"
    if depth == 0:
        title += " (no recorded parents: an initial architecture)"
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    return fig


def _layer_text(layer: Any) -> str:
    if not isinstance(layer, Mapping):
        return _short(layer, 40)
    op = layer.get("op", layer.get("type", "layer"))
    parts = [str(op)]
    for key, value in layer.items():
        if key in ("op", "type", "index"):
            continue
        if isinstance(value, bool):
            if value:
                parts.append(key)
        else:
            parts.append(f"{key} {_short(value, 16)}" if key != "width" else f"× {value}")
    return "  ".join(parts)


def _chain(ax: Any, description: Mapping[str, Any]) -> None:
    boxes = []
    if "input_shape" in description:
        boxes.append((f"input {_short(description['input_shape'], 30)}", _BOX))
    if isinstance(description.get("stem"), Mapping):
        boxes.append(("stem: " + _layer_text(description["stem"]), _BOX))
    for layer in description["layers"]:
        boxes.append((_layer_text(layer), _BEST_BOX))
    if "num_classes" in description:
        boxes.append((f"classifier → {description['num_classes']} classes", _BOX))
    ax.set_xlim(0, 1)
    ax.set_ylim(len(boxes) - 0.5, -0.5)  # top to bottom
    texts = [ax.text(0.5, i, text, ha="center", va="center", fontsize=9, bbox=style)
             for i, (text, style) in enumerate(boxes)]
    for a, b in zip(texts, texts[1:]):
        _connect(ax, a, b)


def _cell(ax: Any, nodes: Mapping[str, Any]) -> None:
    """Nodes on a line, one arc per incoming edge labelled with its op (``none`` edges hidden)."""
    names = sorted({*nodes, *(src for ins in nodes.values() for src in ins)})
    step = 2.5  # data units between nodes: room for an arc between neighbours' boxes
    # Equal aspect, so an arc's height in data units is known and its label can sit on it.
    ax.set_aspect("equal")
    ax.set_xlim(-1.0, step * (len(names) - 1) + 1.0)
    ax.set_ylim(-0.8, 0.2 * step * len(names) + 0.6)
    boxes = {name: ax.text(step * i, 0, name, ha="center", va="center", fontsize=9,
                           bbox=_BEST_BOX) for i, name in enumerate(names)}
    for dst, inputs in nodes.items():
        for src, op in inputs.items():
            if str(op) == "none" or src not in boxes:
                continue
            span = step * (names.index(dst) - names.index(src))
            rad = -0.45 if abs(span) <= step else -0.3
            _connect(ax, boxes[src], boxes[dst], rad)
            # The midpoint of matplotlib's arc3 curve lies rad * chord / 2 off the chord.
            ax.text(step * names.index(src) + span / 2, -rad * span / 2, str(op), ha="center",
                    va="center", fontsize=7, zorder=5,
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none"})


def _key_values(ax: Any, description: Mapping[str, Any]) -> None:
    items = list(description.items())[:24]
    ax.set_xlim(0, 1)
    ax.set_ylim(len(items) - 0.5, -0.5)  # top to bottom
    for i, (key, value) in enumerate(items):
        ax.text(0.5, i, f"{key}: {_short(value)}", ha="center", va="center", fontsize=9,
                bbox=_BOX)


def architecture(best: Evaluation | None) -> Figure:
    """The best architecture drawn from its ``description``."""
    if best is None:
        return placeholder(Figure(figsize=(6, 3)), "no successful evaluation yet")
    d = best.description
    if isinstance(d.get("layers"), list):
        height = len(d["layers"]) + 3
        draw = _chain
    elif isinstance(d.get("nodes"), Mapping) and all(
        isinstance(v, Mapping) for v in d["nodes"].values()
    ):
        height = 6
        draw = lambda ax, desc: _cell(ax, desc["nodes"])
    elif d:
        height = min(len(d), 24) + 1
        draw = _key_values
    else:
        return placeholder(Figure(figsize=(6, 3)), f"#{best.id} has no description")
    fig = Figure(figsize=(7, max(3.0, 0.55 * height + 1.0)))
    ax = fig.add_subplot()
    ax.set_axis_off()
    draw(ax, d)
    name = d.get("arch_str") or d.get("encoding")
    ax.set_title(
        f"best architecture #{best.id}" + (f"\n{_short(name, 75)}" if name else "")
        + f"\nfitness {best.fitness:.4g}, params {describe_cost(best.params)}, "
        f"flops {describe_cost(best.flops)}", fontsize=10)
    fig.tight_layout()
    return fig
