"""The run directory: config, history (sqlite), checkpoints (orbax), exported models, report.

Nothing else in evonas spells a run directory's file names (:mod:`evonas.store.layout`). Every
write is atomic: a run killed at any instant resumes from its last complete generation and
writes exactly the history an uninterrupted run writes.
"""

from evonas.store import layout
from evonas.store.atomic import atomic_write_bytes, atomic_write_text, read_json
from evonas.store.checkpoints import Checkpoint, Checkpoints, NoCheckpointError
from evonas.store.history import History, genome_key
from evonas.store.layout import RunPaths
from evonas.store.models import export_model, load_model, model_dir
from evonas.store.params import ParamStore
from evonas.store.run_dir import RunDir, RunDirError, config_fingerprint
from evonas.store.serving import export_serving, load_serving

__all__ = [
    "Checkpoint",
    "Checkpoints",
    "History",
    "NoCheckpointError",
    "ParamStore",
    "RunDir",
    "RunDirError",
    "RunPaths",
    "atomic_write_bytes",
    "atomic_write_text",
    "config_fingerprint",
    "export_model",
    "export_serving",
    "genome_key",
    "layout",
    "load_model",
    "load_serving",
    "model_dir",
    "read_json",
]
