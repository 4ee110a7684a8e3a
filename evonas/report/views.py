"""The data behind the interactive views, shared by the offline report and the live dashboard.

Both pages run the same script (``assets/app.js``) over the same JSON: the report embeds it in
the page, the dashboard serves it piece by piece as a run grows. Everything here is plain JSON
(numbers, strings, lists, dicts; non-finite numbers as ``null``), built from a run directory
that may come from someone else: it is data to the page, never markup, and the page puts every
string in with ``textContent`` or escaped for plotly.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evonas.objectives import (
    front_rows,
    hypervolume_by_generation,
    pareto_front,
    row_value,
)
from evonas.report.genes import Genes, run_genes
from evonas.report.history import Evaluation, first_of_each
from evonas.report.importance import gene_importance
from evonas.store.atomic import read_small_text
from evonas.store.configfile import CONFIG_LIMIT, load_yaml
from evonas.store.layout import RunPaths

_MAX_DEPTH = 12  # nesting kept of a description or metrics value; deeper is cut
_MAX_TEXT = 2_000  # characters kept of one string from the history
MAX_ROWS = 20_000  # rows a report's page holds (the best, the front, the best's ancestry and a
# fixed random sample beyond); the dashboard holds every row
MAX_DETAILS = 2_000  # descriptions and metrics a report's page holds (the best ones first)


def read_config(run_dir: str | Path) -> tuple[str | None, Any, list[tuple[str, bool]]]:
    """``config.yaml`` as text and as data, and its objectives as ``(name, maximize)`` (the first
    is the fitness; ``[("fitness", True)]`` when the config names none or can't be read)."""
    path = RunPaths(run_dir).config
    if not path.is_file() and not path.is_symlink():
        return None, None, [("fitness", True)]
    try:  # a run directory may come from someone else: a regular file of bounded size only
        text: str | None = read_small_text(path, CONFIG_LIMIT)
    except (OSError, ValueError) as err:
        warnings.warn(f"the report leaves out {path}: {err}", stacklevel=2)
        return None, None, [("fitness", True)]
    try:  # and a config's size of value (no alias bomb, no nesting past a config's)
        data: Any = load_yaml(text, str(path))
    except ValueError as err:
        warnings.warn(f"the report shows {path} as text only: {err}", stacklevel=2)
        data = None
    try:
        objectives = [(str(o["name"]), o.get("direction", "max") != "min")
                      for o in data["search"]["objectives"]]
    except (TypeError, KeyError, IndexError, AttributeError):
        objectives = []  # a config the report cannot read is still shown, as text
    return text, data, objectives or [("fitness", True)]


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as strict JSON data: non-finite numbers become None, long strings are cut,
    anything else becomes its text (values of a run directory may be anything)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return value if len(value) <= _MAX_TEXT else value[:_MAX_TEXT - 1] + "…"
    if depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {str(k)[:_MAX_TEXT]: plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    return plain(str(value), depth)


def _num(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def objective_values(e: Evaluation, objectives: Sequence[tuple[str, bool]]) -> list[float]:
    """The row's value of each objective (NaN where failed or unknown); the first objective is
    the row's fitness when the config names none."""
    if not e.ok:
        return [math.nan] * len(objectives)
    row = e.as_row()
    out = []
    for name, _ in objectives:
        value = e.fitness if name == "fitness" else row_value(row, name)
        out.append(value)
    return out


def row_json(e: Evaluation, objectives: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """One evaluated architecture as the views need it (without its description)."""
    return {
        "id": e.id, "gen": e.generation,
        "genome": None if e.genome is None else list(e.genome),
        "fit": _num(e.fitness) if e.ok else None,
        "obj": [_num(v) for v in objective_values(e, objectives)],
        "params": _num(e.params), "flops": _num(e.flops),
        "est": None if e.estimate is None else plain(e.estimate),
        "fid": int(e.fidelity) if math.isfinite(e.fidelity) and e.fidelity > 0 else None,
        "failed": not e.ok, "reason": None if e.reason is None else plain(e.reason),
        "parents": list(e.parents),
    }


def details_json(e: Evaluation) -> dict[str, Any]:
    """What the details panel shows beyond the row: the description and every metric."""
    return {"description": plain(dict(e.description)), "metrics": plain(e.metrics)}


def front_json(evaluations: Sequence[Evaluation], objectives: Sequence[tuple[str, bool]]
               ) -> dict[str, Any]:
    """The Pareto front's ids and axes: the first two objectives of a multi-objective run (with
    the hypervolume per generation), else fitness against parameters."""
    if len(objectives) > 1:
        rows = [e.as_row() for e in evaluations]
        ids = [int(r["id"]) for r in front_rows(rows, objectives)]
        curve = hypervolume_by_generation(rows, objectives)
        return {"axes": [objectives[0][0], objectives[1][0]], "ids": ids,
                "hypervolume": [[g, _num(h)] for g, h in curve]}
    ok = [e for e in first_of_each(evaluations) if e.ok and math.isfinite(e.params)]
    if not ok:
        return {"axes": [objectives[0][0], "params"], "ids": [], "hypervolume": []}
    points = np.array([[e.fitness, e.params] for e in ok])
    front = pareto_front(points, [objectives[0][1], False])
    return {"axes": [objectives[0][0], "params"], "ids": [ok[i].id for i in front],
            "hypervolume": []}


def best_id(evaluations: Sequence[Evaluation], maximize: bool) -> int | None:
    ok = [e for e in evaluations if e.ok]
    if not ok:
        return None
    sign = -1.0 if maximize else 1.0
    return min(ok, key=lambda e: (sign * e.fitness, e.id)).id


def progress_json(evaluations: Sequence[Evaluation], maximize: bool) -> list[list[float]]:
    """``[[generation, best, median, worst], ...]`` of the successful rows, oldest first."""
    by_generation: dict[int, list[float]] = {}
    for e in evaluations:
        if e.ok:
            by_generation.setdefault(e.generation, []).append(e.fitness)
    out = []
    for g in sorted(by_generation):
        values = np.asarray(by_generation[g])
        best, worst = (values.max(), values.min()) if maximize else (values.min(), values.max())
        out.append([g, float(best), float(np.median(values)), float(worst)])
    return out


def summary_json(evaluations: Sequence[Evaluation]) -> dict[str, int]:
    """Counts over every row (a report's page may hold a sample of them)."""
    return {"evaluations": len(evaluations),
            "failed": sum(not e.ok for e in evaluations),
            "generations": len({e.generation for e in evaluations})}


def _ancestry(best: int | None, by_id: Mapping[int, Evaluation], limit: int) -> set[int]:
    seen: set[int] = set()
    stack = [] if best is None else [best]
    while stack and len(seen) < limit:
        i = stack.pop()
        if i in seen or i not in by_id:
            continue
        seen.add(i)
        stack.extend(by_id[i].parents)
    return seen


def kept_rows(evaluations: Sequence[Evaluation], maximize: bool, front: Sequence[int],
              best: int | None, limit: int, seed: int = 0) -> set[int]:
    """The ids a page of at most ``limit`` rows holds: every one when they fit, else the best
    (a tenth of the limit), the front (up to half), the best's ancestry and a fixed random
    sample."""
    if len(evaluations) <= limit:
        return {e.id for e in evaluations}
    sign = -1.0 if maximize else 1.0
    ranked = sorted((e for e in evaluations if e.ok), key=lambda e: (sign * e.fitness, e.id))
    keep = {e.id for e in ranked[:limit // 10]} | set(front[:limit // 2])
    keep |= _ancestry(best, {e.id: e for e in evaluations}, limit // 10)
    rest = np.array(sorted({e.id for e in evaluations} - keep), dtype=np.int64)
    room = max(0, limit - len(keep))
    if room and len(rest):
        keep |= set(np.random.default_rng(seed).choice(rest, min(room, len(rest)),
                                                       replace=False).tolist())
    return keep


def importance_json(evaluations: Sequence[Evaluation], genes: Genes,
                    objectives: Sequence[tuple[str, bool]]) -> dict[str, Any]:
    """Gene importance per objective (see :mod:`evonas.report.importance`), or why not.

    Returns:
        ``{"objectives": [<Importance.as_json()> | {"objective": name, "unavailable": why}]}``,
        or ``{"unavailable": why}`` when scikit-learn is missing.
    """
    rows = [e for e in evaluations if e.ok and e.genome is not None
            and len(e.genome) == len(genes.names)]
    genomes = np.array([e.genome for e in rows], dtype=np.int64).reshape(len(rows),
                                                                         len(genes.names))
    matrix = np.array([objective_values(e, objectives) for e in rows],
                      dtype=np.float64).reshape(len(rows), len(objectives))
    out = []
    for k, (name, _) in enumerate(objectives):
        values = matrix[:, k]
        try:
            result = gene_importance(genomes, values, genes.names, genes.labels, objective=name)
        except ImportError as err:
            return {"unavailable": str(err)}
        except ValueError as err:
            out.append({"objective": name, "unavailable": str(err)})
            continue
        out.append(result.as_json())
    return {"objectives": out}


def run_meta(run_dir: str | Path, evaluations: Sequence[Evaluation]
             ) -> tuple[dict[str, Any], Genes, list[tuple[str, bool]]]:
    """The parts of a run's data that do not grow with it (its name, objectives and genes) as
    JSON, with the genes and objectives themselves."""
    _, config, objectives = read_config(run_dir)
    genes = run_genes(evaluations, config)
    meta = {"name": Path(run_dir).resolve().name,
            "objectives": [{"name": n, "maximize": m} for n, m in objectives],
            "genes": genes.as_json(), "genes_source": genes.source}
    return meta, genes, objectives


def generation_json(generation: Mapping[str, Any]) -> dict[str, Any]:
    """A generation as the views show it: its counts, and what the strategy reported of itself
    (``diagnostics``) when it did."""
    out = {"generation": plain(generation.get("generation")),
           "evaluations": plain(generation.get("evaluations"))}
    noted = generation.get("diagnostics")
    if isinstance(noted, Mapping) and noted:
        out["diagnostics"] = {str(k): plain(v) for k, v in noted.items()}
    return out


def run_data(run_dir: str | Path, evaluations: Sequence[Evaluation],
             generations: Sequence[Mapping[str, Any]] = (), *, details: bool = True,
             importance: bool = True, max_rows: int = MAX_ROWS) -> dict[str, Any]:
    """Everything the views show of one run, as one JSON-able dict.

    Args:
        run_dir: the run directory (its config names the objectives and the space).
        evaluations: its history's rows.
        generations: the history's generation summaries (their counts are shown).
        details: include each row's description and metrics (the offline report does; the
            dashboard serves them one at a time).
        importance: include gene importance (it fits a forest per objective).
        max_rows: the most rows the page holds (see :func:`kept_rows`); counts, progress, the
            front and importance are of every row.
    """
    meta, genes, objectives = run_meta(run_dir, evaluations)
    maximize = objectives[0][1]
    front, best = front_json(evaluations, objectives), best_id(evaluations, maximize)
    shown = kept_rows(evaluations, maximize, front["ids"], best, max_rows)
    data: dict[str, Any] = {
        **meta,
        "rows": [row_json(e, objectives) for e in evaluations if e.id in shown],
        # Counts only: times differ between a run and the same run resumed, the page must not.
        "generations": [generation_json(g) for g in generations],
        "front": front, "best": best,
        "progress": progress_json(evaluations, maximize),
        "summary": {**summary_json(evaluations), "shown": len(shown)},
    }
    if details:
        described = kept_rows([e for e in evaluations if e.id in shown], maximize,
                              front["ids"], best, MAX_DETAILS)
        data["details"] = {str(e.id): details_json(e) for e in evaluations if e.id in described}
        data["summary"]["described"] = len(described)
    if importance:
        data["importance"] = importance_json(evaluations, genes, objectives)
    return data


def script_json(value: Any) -> str:
    """``value`` as JSON that is safe inside ``<script type="application/json">``: ``<``, ``>``
    and ``&`` are written as ``\\u`` escapes, so no string can close the element or open a
    comment, and ``JSON.parse`` gives back the same value."""
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
