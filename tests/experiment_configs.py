"""Tiny experiment configs shared by the experiment, resume and CLI tests (seconds, not minutes)."""

from __future__ import annotations

from typing import Any

import yaml

from evonas.experiment import ExperimentConfig


def tiny_dict(**sections: dict[str, Any]) -> dict[str, Any]:
    """An MLP search on 300 digits: 3 generations of 4, 20 steps; sections override parts."""
    data: dict[str, Any] = {
        "encoding": {"name": "mlp", "options": {"max_layers": 2, "widths": [16, 32]}},
        "dataset": {"name": "digits", "limit": 300},
        "strategy": {"name": "regularized_evolution",
                     "params": {"population_size": 4, "sample_size": 2}},
        # masked: one compile for every population, the cheapest plan for tiny MLPs.
        "train": {"steps": 20, "batch_size": 32, "plan": "masked"},
        "search": {"population_size": 4, "generations": 3, "seed": 7},
        "final": {"retrain": {"top_k": 2, "steps": 40}},
        "display": {"progress": False, "report": False},
    }
    return _merged(data, sections)


# Sections inside sections (final.retrain, evaluator.halving, ...): merged key by key too.
_NESTED = ("retrain", "front", "distil", "prune", "inherit", "halving", "latency", "prefilter")


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes``' sections merged in key by key (a free-form value such as
    ``strategy.params`` is replaced whole)."""
    out = dict(base)
    for name, values in changes.items():
        section = dict(out.get(name, {}))
        for key, value in values.items():
            if key in _NESTED and isinstance(value, dict) and isinstance(section.get(key), dict):
                value = {**section[key], **value}
            section[key] = value
        out[name] = section
    return out


def tiny_config(**sections: dict[str, Any]) -> ExperimentConfig:
    return ExperimentConfig.from_dict(tiny_dict(**sections))


def write_yaml(path, **sections: dict[str, Any]):
    path.write_text(yaml.safe_dump(tiny_dict(**sections)))
    return path


def evaluations(run_dir) -> list[tuple]:
    """Every ``evaluations`` row of a run as comparable tuples (genome, fitness, ...)."""
    from evonas.store import History

    with History(run_dir / "history.sqlite", readonly=True) as history:
        return [(r["id"], r["generation"], tuple(r["genome"]), r["fitness"], r["failed"],
                 r["cached"], tuple(r["parents"]), r["val_loss"], r["fidelity"], r["estimate"])
                for r in history.rows()]


def committed_generations(run_dir, timeout: float = 5.0) -> int:
    """Generations committed to a run's history, read as another process would: 0 before the
    history exists or while sqlite can't read it within ``timeout`` seconds."""
    import sqlite3
    from pathlib import Path

    path = Path(run_dir) / "history.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                             timeout=timeout) as db:
            return db.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.Error:
        return 0
