"""``evonas export DIR``: a run's exported model (or any exported model's directory) as
StableHLO for serving, written while owning the run directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from evonas.store import export_serving, model_dir
from evonas.store.layout import RUN_INFO
from evonas.store.run_dir import RunLock
from evonas.store.serving import DEFAULT_PLATFORMS, check_platforms


def export_for_serving(path: str | os.PathLike,
                       platforms: Sequence[str] = DEFAULT_PLATFORMS) -> Path:
    """Writes ``model.stablehlo`` and ``serving.json`` beside the exported model at ``path``
    (a run directory's ``best/``, or ``front/<id>``, ``distilled``, ...).

    Raises:
        ValueError: no exported model with parameters there, an unknown platform, or the run
            directory owned by another process (one line each; nothing is written).
    """
    platforms = check_platforms(platforms)
    directory = model_dir(path)
    run_root = next((p for p in (directory.parent, directory.parent.parent)
                     if (p / RUN_INFO).is_file()), None)
    lock = RunLock(run_root) if run_root is not None else None
    try:
        return export_serving(directory, platforms,
                              root=run_root if run_root is not None else directory.parent)
    finally:
        if lock is not None:
            lock.release()
