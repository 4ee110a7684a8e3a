"""The interactive part of the report and the dashboard: its markup, script, style and plotly.js.

The views are drawn in the browser by one script (``assets/app.js``) with plotly.js, the
bundle that the ``plotly`` package ships (``plotly/package_data/plotly.min.js``; docs/dashboard.md
says why this library). The report inlines both scripts, so it opens offline and loads nothing;
the dashboard serves them from its own routes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
from importlib import resources
from typing import Any

from evonas.report.views import script_json

CONFIG_ID = "evonas-config"


@functools.cache
def asset(name: str) -> bytes:
    """``app.js`` or ``app.css``, as shipped in the package."""
    return (resources.files("evonas.report") / "assets" / name).read_bytes()


@functools.lru_cache(maxsize=1)
def plotly_js() -> bytes:
    """The minified plotly.js bundle of the installed ``plotly`` package.

    Raises:
        ValueError: the ``plotly`` package is missing (it is a dependency of evonas).
    """
    try:
        return (resources.files("plotly") / "package_data" / "plotly.min.js").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError):
        raise ValueError("the interactive report needs the plotly package, a dependency of "
                         "evonas: pip install plotly") from None


def script_hash(source: bytes | str) -> str:
    """The CSP source that allows exactly this inline script: ``'sha256-...'``."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    return "'sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode("ascii") + "'"


def _select(id_: str, label: str, options: tuple[tuple[str, str], ...] = (),
            wrap: str | None = None, hidden: bool = False) -> str:
    opts = "".join(f'<option value="{v}">{html.escape(t)}</option>' for v, t in options)
    wrap_id = f' id="{wrap}"' if wrap else ""
    return (f'<label class="ev-controls"{wrap_id}{" hidden" if hidden else ""}>{label}'
            f'<select id="{id_}">{opts}</select></label>')


def app_markup() -> str:
    """The containers the script fills: the same on the report and the dashboard (no data)."""
    sort = (("best", "best first"), ("newest", "newest first"), ("oldest", "oldest first"))
    return f"""<section id="evonas-app" class="ev">
<p id="ev-status" class="ev-status">The interactive views need JavaScript.</p>
<div id="ev-runs"></div>
{_select("ev-run", "Run shown in the per-run views:", wrap="ev-run-wrap", hidden=True)}
<div class="ev-layout">
<div class="ev-main">
<h2>Progress</h2>
<div id="ev-progress" class="ev-plot"></div>
<p id="ev-progress-note" class="ev-note"></p>
<div id="ev-diagnostics-wrap" hidden>
<h2>What the search reports of itself</h2>
<p class="ev-note">Per generation, what the strategy reported: a differentiable search's losses
and the share of parameter-free choices (skip, none, pooling) in its argmax (a share rising to 1
is DARTS collapsing); a hybrid's phase and best so far.</p>
<div id="ev-diagnostics" class="ev-plot"></div>
</div>
<h2>Every evaluated architecture</h2>
<p class="ev-note">Hover a point for its genes; click it for everything about it.</p>
{_select("ev-x", "x axis:")}
<div id="ev-scatter" class="ev-plot"></div>
<p id="ev-scatter-note" class="ev-note"></p>
<h2>Pareto front</h2>
<div id="ev-front" class="ev-plot"></div>
<p id="ev-front-note" class="ev-note"></p>
<div id="ev-hv" class="ev-plot" hidden></div>
<h2>Which genes matter</h2>
{_select("ev-objective", "objective:", hidden=True)}
<div id="ev-importance" class="ev-plot"></div>
<p id="ev-importance-note" class="ev-note"></p>
<div id="ev-values" class="ev-plot"></div>
<h2>Genes against fitness</h2>
<p class="ev-note">Every successful architecture as a line through its genes' values and its
objectives; drag along an axis to keep a range.</p>
<div id="ev-parcoords" class="ev-plot"></div>
<h2>Lineage</h2>
<p class="ev-note">Every architecture at its generation and fitness, a line from each parent to
its child; the ancestry of the selected one (at first: the best) in orange.</p>
<div id="ev-lineage" class="ev-plot"></div>
<h2>Evaluated architectures</h2>
{_select("ev-sort", "order:", sort)}
<p id="ev-table-note" class="ev-note"></p>
<table id="ev-table" data-total="0"></table>
</div>
<aside class="ev-aside"><div id="ev-details"><p class="ev-empty">Click a point or a row to see an
architecture: its genes by name, its drawing, metrics, costs, how its fitness was estimated
and its parents.</p></div></aside>
</div>
</section>"""


def config_script(config: Any) -> str:
    """The page's settings and data as ``<script type="application/json">`` (never executed;
    ``<``, ``>`` and ``&`` escaped, see :func:`evonas.report.views.script_json`)."""
    return f'<script type="application/json" id="{CONFIG_ID}">{script_json(config)}</script>'
