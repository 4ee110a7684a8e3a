"""The report's HTML page: one self-contained file that opens offline.

Images are embedded as base64 ``data:`` URIs, the style sheet and the scripts of the
interactive views (plotly.js and ``assets/app.js``) are inline, and the run's data is JSON in a
``<script type="application/json">`` element. A Content-Security-Policy in the page allows
exactly those two scripts (by hash) and no connection at all: the page loads nothing from
anywhere, so it can be mailed or archived with the run.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from evonas.report import interactive
from evonas.report.history import Evaluation
from evonas.report.plots import describe_cost

TOP_K = 10

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1440px; color: #222;
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


def summarize(description: Any, width: int = 90) -> str:
    """A one-line summary of an architecture's description, for tables (not yet escaped)."""
    if not isinstance(description, Mapping):
        description = {"value": description}
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


def data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any) -> str:
    """A number as 4 significant digits, HTML-escaped; anything else escaped as text (values of
    a run directory may come from someone else)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.4g}" if math.isfinite(value) else "–"
    return html.escape(str(value))


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _top_table(top: Sequence[Evaluation]) -> str:
    if not top:
        return "<p>No successful evaluation yet.</p>"
    rows = "\n".join(
        f"<tr><td class=num>{_esc(e.id)}</td><td class=num>{_esc(e.generation)}</td>"
        f"<td class=num>{_fmt(e.fitness)}</td><td class=num>{_esc(describe_cost(e.params))}</td>"
        f"<td class=num>{_esc(describe_cost(e.flops))}</td>"
        f"<td>{_esc(describe_estimate(e))}</td>"
        f"<td>{html.escape(summarize(e.description))}</td></tr>"
        for e in top
    )
    return (
        "<table><thead><tr><th>id</th><th>generation</th><th>fitness</th><th>params</th>"
        "<th>flops</th><th>fitness estimated by</th><th>architecture</th></tr></thead>"
        f"<tbody>\n{rows}\n</tbody></table>"
    )


def describe_estimate(e: Evaluation) -> str:
    """``trained, 600 steps``, ``oneshot``, ``table``: how a row's fitness was obtained."""
    if e.estimate is None:
        return "–"
    if math.isfinite(e.fidelity) and e.fidelity > 0:
        return f"{e.estimate}, {int(e.fidelity)} steps"
    return e.estimate


def _get(mapping: Any, key: str, default: Any = "–") -> Any:
    return mapping.get(key, default) if isinstance(mapping, Mapping) else default


def _beliefs_table(beliefs: tuple[int, Mapping[str, Mapping[str, float]]] | None) -> str:
    """What a distribution-based search believes: per gene its most probable value and the
    whole distribution, most probable first (every value escaped)."""
    if beliefs is None:
        return ""
    generation, genes = beliefs
    rows = []
    for gene, values in genes.items():
        ranked = sorted(values.items(), key=lambda kv: -float(kv[1]))
        if not ranked:
            continue
        top, p = ranked[0]
        spread = ", ".join(f"{html.escape(str(v))} {float(q):.2f}" for v, q in ranked)
        rows.append(f"<tr><td>{html.escape(str(gene))}</td><td>{html.escape(str(top))}</td>"
                    f"<td>{float(p):.2f}</td><td>{spread}</td></tr>")
    return (f"<h2>What the search believes (after generation {int(generation)})</h2>"
            "<p>The strategy's distribution over each gene's values: where it would sample "
            "next.</p><table><thead><tr><th>gene</th><th>most probable</th><th>p</th>"
            f"<th>distribution</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")


# How a differentiable search's diagnostics are headed in the report (others: their own name).
_DIAGNOSTIC_NAMES = {"parameter_free": "parameter-free share of the argmax",
                     "train_loss": "weights' loss", "arch_loss": "architecture's loss",
                     "phase": "phase (0 first, 1 second strategy)",
                     "best_so_far": "best so far"}


def _diagnostic(value: Any) -> str:
    """A whole number as it is (epochs, a phase), any other number to four places."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
            value) and float(value).is_integer():
        return str(int(value))
    return _number(value)


def _handoff_gain(noted: Sequence[tuple[Any, Mapping[str, Any]]]) -> str:
    """A hybrid search's two phases compared: the best the first strategy found alone, and
    what the second added to it."""
    def best(phase: int) -> float | None:
        values = [d.get("best_so_far") for _, d in noted if d.get("phase") == phase]
        values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        return values[-1] if values else None

    first, final = best(0), best(1)
    if first is None or final is None:
        return ""
    return (f"<p>Hybrid search: the first strategy's best after its generations was "
            f"{first:.4f}; after the second strategy's, {final:.4f} ({final - first:+.4f}).</p>")


def _diagnostics_table(generations: Sequence[Mapping[str, Any]]) -> str:
    """What the strategy reported of itself per generation (a differentiable search: its
    epochs, losses and the share of parameter-free choices in its argmax, which rises to 1
    when DARTS collapses to skip connections); every name and value escaped."""
    noted = [(g.get("generation"), g["diagnostics"]) for g in generations
             if isinstance(g.get("diagnostics"), Mapping)]
    if not noted:
        return ""
    names = list(dict.fromkeys(k for _, d in noted for k in d))
    head = "".join(f"<th>{html.escape(_DIAGNOSTIC_NAMES.get(n, str(n)))}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{html.escape(str(g))}</td>"
        + "".join(f"<td>{_diagnostic(d.get(n))}</td>" for n in names) + "</tr>"
        for g, d in noted)
    collapse = ""
    shares = [d.get("parameter_free") for _, d in noted
              if isinstance(d.get("parameter_free"), (int, float))]
    if shares:
        collapse = (f"<p>Parameter-free choices (skip, none, pooling) make up {shares[-1]:.0%} "
                    f"of the learned argmax at the end (from {shares[0]:.0%} after the first "
                    "generation); a share near 100% is the collapse DARTS is known for.</p>")
    return (f"<h2>What the search reported of itself</h2>{collapse}{_handoff_gain(noted)}"
            "<table><thead><tr>"
            f"<th>generation</th>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _number(value: Any, digits: int = 4) -> str:
    """A float from a file anyone may have written, formatted, or an escaped dash."""
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return "–"


def _final_table(final: Mapping[str, Any] | None) -> str:
    """The run's headline (``best/final.json``): the top k retrained on train + validation and
    their test accuracy, and the ensemble's; for a tabular run the table's scores of its top k.
    Every value escaped or formatted as a number."""
    models = _get(final, "models", None)
    if not isinstance(models, list) or not models:
        return ""
    models = [m for m in models if isinstance(m, Mapping)]
    if "retrain_steps" in final:
        rows = "".join(
            f"<tr><td>{_esc(_get(m, 'rank'))}</td><td>#{_esc(_get(m, 'id'))}</td>"
            f"<td class=\"num\">{_number(_get(m, 'fitness'))}</td>"
            f"<td class=\"num\">{_number(_get(m, 'test_acc'))}</td></tr>" for m in models)
        ensemble = (f"<p>Ensemble of {_esc(_get(final, 'ensemble_size'))} (mean logits): test "
                    f"accuracy <b>{_number(_get(final, 'ensemble_test_acc'))}</b>.</p>"
                    if "ensemble_test_acc" in final else "")
        return (f"<h2>Result: best test accuracy {_number(_get(final, 'best_test_acc'))}</h2>"
                f"<p>The top {len(models)} by search fitness (validation), retrained for "
                f"{_esc(_get(final, 'retrain_steps'))} steps on train + validation and tested "
                "once; the best is exported to <code>best/</code>.</p>"
                "<table><thead><tr><th>rank</th><th>id</th><th>search fitness</th>"
                f"<th>test accuracy</th></tr></thead><tbody>{rows}</tbody></table>{ensemble}")
    names = [k for k in models[0] if k not in ("rank", "id", "genome", "fitness", "params")]
    head = "".join(f"<th>{_esc(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{_esc(_get(m, 'rank'))}</td><td>#{_esc(_get(m, 'id'))}</td>"
        f"<td class=\"num\">{_number(_get(m, 'fitness'))}</td>"
        + "".join(f"<td class=\"num\">{_number(_get(m, n))}</td>" for n in names) + "</tr>"
        for m in models)
    return (f"<h2>Result: the top {len(models)} read from the table "
            f"{_esc(_get(final, 'benchmark'))}</h2><table><thead><tr><th>rank</th><th>id</th>"
            f"<th>search fitness</th>{head}</tr></thead><tbody>{rows}</tbody></table>")


def _distil_table(distilled: Mapping[str, Any] | None) -> str:
    """Teacher, student trained alone and student distilled (``distilled/distil.json``), side
    by side; every value escaped or formatted as a number."""
    teacher, student = _get(distilled, "teacher", None), _get(distilled, "student", None)
    if not isinstance(teacher, Mapping) or not isinstance(student, Mapping):
        return ""
    members = _get(teacher, "members", [])
    members = ", ".join(f"#{html.escape(str(m))}" for m in members) if isinstance(
        members, list) else "–"
    who = f"#{html.escape(str(_get(student, 'id')))}"
    params = html.escape(str(_get(student, "params")))
    rows = [("teacher: the ensemble of " + members, "–", _number(_get(teacher, "test_acc"))),
            (f"student {who} trained alone", params, _number(_get(student, "alone_test_acc"))),
            (f"student {who} distilled", params, _number(_get(student, "distilled_test_acc")))]
    body = "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    return (f"<h2>Distillation</h2><p>T = {_number(_get(distilled, 'temperature'), 2)}, "
            f"alpha = {_number(_get(distilled, 'alpha'), 2)}, "
            f"{html.escape(str(_get(distilled, 'steps')))} steps on train + validation.</p>"
            "<table><thead><tr><th>model</th><th>params</th><th>test accuracy</th></tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _prune_table(pruned: Mapping[str, Any] | None) -> str:
    """Params, non-zero params, FLOPs, latency and test accuracy before and after pruning
    (``pruned/prune.json``); every value formatted as a number or escaped."""
    before, after = _get(pruned, "before", None), _get(pruned, "after", None)
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return ""
    rows = "".join(
        f"<tr><td>{label}</td><td>{_number(_get(side, 'params'), 0)}</td>"
        f"<td>{_number(_get(side, 'nonzero_params'), 0)}</td>"
        f"<td>{_number(_get(side, 'flops'), 0)}</td>"
        f"<td>{_number(_get(side, 'latency_ms'), 3)}</td>"
        f"<td>{_number(_get(side, 'test_acc'))}</td></tr>"
        for label, side in (("before", before), ("after fine-tuning", after)))
    return (f"<h2>Pruning</h2><p>{html.escape(str(_get(pruned, 'mode')))} pruning to sparsity "
            f"{_number(_get(pruned, 'sparsity'), 2)}, "
            f"{html.escape(str(_get(pruned, 'steps')))} fine-tuning steps.</p>"
            "<table><thead><tr><th></th><th>params</th><th>non-zero</th><th>FLOPs</th>"
            "<th>latency ms</th><th>test accuracy</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>")


def _front_table(front: Mapping[str, Any] | None) -> str:
    """The retrained Pareto front (``front/front.json``), or nothing for other runs. Every
    value is escaped: the file may have been written by anyone."""
    members = _get(front, "members", None)
    if not isinstance(members, list) or not members:
        return ""
    objectives = [o for o in _get(front, "objectives", []) or [] if isinstance(o, Mapping)]
    names = [str(_get(o, "name")) for o in objectives]
    head = "".join(f"<th>{_esc(n)} ({_esc(_get(o, 'direction'))})</th>"
                   for n, o in zip(names, objectives))
    rows = "\n".join(
        f"<tr><td class=num>{_esc(_get(m, 'id'))}</td>"
        + "".join(f"<td class=num>{_fmt(_get(_get(m, 'objectives', {}), n))}</td>"
                  for n in names)
        + f"<td class=num>{_esc(describe_cost(_get(m, 'params')))}</td>"
        f"<td class=num>{_fmt(_get(m, 'test_acc'))}</td>"
        f"<td>{_esc(summarize(_get(m, 'description', {})))}</td></tr>"
        for m in members if isinstance(m, Mapping)
    )
    steps = _get(front, "retrain_steps")
    how = (f"retrained ({_fmt(steps)} steps on train + validation) and tested" if steps
           else "scored from the table")
    return (
        f"<h2>Pareto front: {len(members)} of {_fmt(_get(front, 'front_size'))} members "
        f"{how}</h2>"
        f"<table><thead><tr><th>id</th>{head}<th>params</th><th>test accuracy</th>"
        f"<th>architecture</th></tr></thead><tbody>\n{rows}\n</tbody></table>"
        f"<p>Exported to <code>front/&lt;id&gt;/</code>; final hypervolume "
        f"{_fmt(_get(front, 'hypervolume'))} (reference: the nadir of the feasible "
        f"evaluations).</p>"
    )


def _interactive(views: Mapping[str, Any] | None) -> tuple[str, str, str]:
    """The interactive views' markup, their scripts and the page's Content-Security-Policy
    (all empty without views)."""
    if views is None:
        return "", "", ""
    plotly_js = interactive.plotly_js().decode("utf-8")
    app_js = interactive.asset("app.js").decode("utf-8")
    app = interactive.app_markup() + "\n" + interactive.config_script(views)
    scripts = f"<script>{plotly_js}</script>\n<script>{app_js}</script>"
    # plotly.js compiles a few functions at run time ('unsafe-eval'); it and the page's own
    # script run, nothing else, and nothing may be fetched.
    policy = ("default-src 'none'; script-src "
              f"{interactive.script_hash(plotly_js)} {interactive.script_hash(app_js)} "
              "'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
              "connect-src 'none'; base-uri 'none'; form-action 'none'")
    return app, scripts, f'<meta http-equiv="Content-Security-Policy" content="{policy}">'


def render_html(
    title: str,
    figures: Sequence[tuple[str, bytes]],
    top: Sequence[Evaluation],
    summary: Mapping[str, Any],
    config_text: str | None,
    front: Mapping[str, Any] | None = None,
    beliefs: tuple[int, Mapping[str, Mapping[str, float]]] | None = None,
    distilled: Mapping[str, Any] | None = None,
    pruned: Mapping[str, Any] | None = None,
    views: Mapping[str, Any] | None = None,
    final: Mapping[str, Any] | None = None,
    generations: Sequence[Mapping[str, Any]] = (),
    sections: Sequence[str] = (),
) -> str:
    """The whole report page.

    Args:
        title: page heading (the run directory's name).
        figures: ``(caption, png bytes)`` pairs, embedded in order.
        top: the best evaluations, best first, for the table.
        summary: short facts shown under the heading (``{"evaluations": 40, ...}``).
        config_text: the run's ``config.yaml`` text, or ``None`` when the run has none.
        front: ``front/front.json`` of a multi-objective run, shown as a table.
        beliefs: ``(generation, {gene: {value: probability}})`` of a distribution-based
            search, shown as a table.
        distilled: ``distilled/distil.json``: teacher, student alone and student distilled.
        pruned: ``pruned/prune.json``: the pruned network before and after.
        views: the interactive views' settings and data (``{"mode": "report", "runs":
            [evonas.report.views.run_data(...)]}``); None leaves them out.
        final: ``best/final.json``: the retrained top k and the ensemble, shown first.
        generations: the history's generation summaries; their ``diagnostics`` are shown.
        sections: more sections, as HTML whose every value is escaped already (the chain of
            warm-started runs, :mod:`evonas.report.continual`), after the final table.
    """
    facts = "".join(
        f"<span><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</span>"
        for k, v in summary.items()
    )
    images = "\n".join(
        f'<figure><img alt="{html.escape(caption)}" src="{data_uri(png)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, png in figures
    )
    config = (
        f"<pre>{html.escape(config_text)}</pre>" if config_text is not None
        else "<p>No config.yaml in this run directory.</p>"
    )
    app, scripts, policy = _interactive(views)
    css = STYLE + (interactive.asset("app.css").decode("utf-8") if views is not None else "")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{policy}
<link rel="icon" href="data:,">
<title>evonas report: {html.escape(title)}</title>
<style>{css}</style>
</head>
<body>
<h1>evonas report: {html.escape(title)}</h1>
<p class="summary">{facts}</p>
{_final_table(final)}
{"".join(sections)}
{app}
<h2>Top {TOP_K} architectures</h2>
{_top_table(top)}
{_front_table(front)}
{_distil_table(distilled)}
{_prune_table(pruned)}
{_beliefs_table(beliefs)}
{_diagnostics_table(generations)}
<h2>Plots</h2>
{images}
<h2>Configuration</h2>
{config}
{scripts}
</body>
</html>
"""
