"""The report's HTML page: one self-contained file that opens offline.

Images are embedded as base64 ``data:`` URIs and the style sheet is inline; the page loads
nothing from anywhere, so it can be mailed or archived with the run.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from evonas.report.history import Evaluation
from evonas.report.plots import describe_cost

TOP_K = 10

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.summary span { display: inline-block; margin-right: 2em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 0.85em; }
"""


def summarize(description: Mapping[str, Any], width: int = 90) -> str:
    """A one-line summary of an architecture's description, for tables."""
    if "arch_str" in description:
        text = str(description["arch_str"])
    elif isinstance(description.get("layers"), list):
        parts = []
        for layer in description["layers"]:
            if isinstance(layer, Mapping):
                op = layer.get("op", layer.get("type", "layer"))
                size = layer.get("width", layer.get("features", ""))
                parts.append(f"{op}{size and f' {size}'}")
            else:
                parts.append(str(layer))
        text = " → ".join(parts) or "(no layers)"
    else:
        skip = ("encoding", "params", "flops")
        text = ", ".join(
            f"{k}={json.dumps(v, default=str)}" for k, v in description.items() if k not in skip
        )
    return text if len(text) <= width else text[: width - 1] + "…"


def data_uri(png: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(png).read_bytes()).decode("ascii")


def _fmt(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else "–"


def _top_table(top: Sequence[Evaluation]) -> str:
    if not top:
        return "<p>No successful evaluation yet.</p>"
    rows = "\n".join(
        f"<tr><td class=num>{e.id}</td><td class=num>{e.generation}</td>"
        f"<td class=num>{_fmt(e.fitness)}</td><td class=num>{describe_cost(e.params)}</td>"
        f"<td class=num>{describe_cost(e.flops)}</td>"
        f"<td>{html.escape(summarize(e.description))}</td></tr>"
        for e in top
    )
    return (
        "<table><thead><tr><th>id</th><th>generation</th><th>fitness</th><th>params</th>"
        f"<th>flops</th><th>architecture</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
    )


def _front_table(front: Mapping[str, Any] | None) -> str:
    """The retrained Pareto front (``front/front.json``), or nothing for other runs."""
    if not front or not front.get("members"):
        return ""
    names = [o["name"] for o in front["objectives"]]
    head = "".join(f"<th>{html.escape(n)} ({o['direction']})</th>"
                   for n, o in zip(names, front["objectives"]))
    rows = "\n".join(
        f"<tr><td class=num>{m['id']}</td>"
        + "".join(f"<td class=num>{_fmt(float(m['objectives'][n]))}</td>" for n in names)
        + f"<td class=num>{describe_cost(m['params'])}</td>"
        f"<td class=num>{_fmt(float(m['test_acc']))}</td>"
        f"<td>{html.escape(summarize(m['description']))}</td></tr>"
        for m in front["members"]
    )
    return (
        f"<h2>Pareto front: {len(front['members'])} of {front['front_size']} members retrained "
        f"({front['retrain_steps']} steps on train + validation) and tested</h2>"
        f"<table><thead><tr><th>id</th>{head}<th>params</th><th>test accuracy</th>"
        f"<th>architecture</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        f"<p>Exported to <code>front/&lt;id&gt;/</code>; final hypervolume "
        f"{_fmt(float(front['hypervolume']))} (reference: the nadir of the feasible "
        f"evaluations).</p>"
    )


def render_html(
    title: str,
    figures: Sequence[tuple[str, Path]],
    top: Sequence[Evaluation],
    summary: Mapping[str, Any],
    config_text: str | None,
    front: Mapping[str, Any] | None = None,
) -> str:
    """The whole report page.

    Args:
        title: page heading (the run directory's name).
        figures: ``(caption, png path)`` pairs, embedded in order.
        top: the best evaluations, best first, for the table.
        summary: short facts shown under the heading (``{"evaluations": 40, ...}``).
        config_text: the run's ``config.yaml`` text, or ``None`` when the run has none.
        front: ``front/front.json`` of a multi-objective run, shown as a table.
    """
    facts = "".join(
        f"<span><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</span>"
        for k, v in summary.items()
    )
    images = "\n".join(
        f'<figure><img alt="{html.escape(caption)}" src="{data_uri(path)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, path in figures
    )
    config = (
        f"<pre>{html.escape(config_text)}</pre>" if config_text is not None
        else "<p>No config.yaml in this run directory.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>evonas report: {html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>evonas report: {html.escape(title)}</h1>
<p class="summary">{facts}</p>
<h2>Top {TOP_K} architectures</h2>
{_top_table(top)}
{_front_table(front)}
<h2>Plots</h2>
{images}
<h2>Configuration</h2>
{config}
</body>
</html>
"""
