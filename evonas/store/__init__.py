"""The run directory: config, history (sqlite), checkpoints (orbax), best model and report.

Every write is atomic: a run killed at any instant resumes from its last complete generation
and writes exactly the history an uninterrupted run writes.
"""

from evonas.store.atomic import atomic_write_bytes, atomic_write_text
from evonas.store.checkpoints import Checkpoint, Checkpoints, NoCheckpointError
from evonas.store.history import History, genome_key
from evonas.store.run_dir import RunDir, RunDirError, config_fingerprint

__all__ = [
    "Checkpoint",
    "Checkpoints",
    "History",
    "NoCheckpointError",
    "RunDir",
    "RunDirError",
    "atomic_write_bytes",
    "atomic_write_text",
    "config_fingerprint",
    "genome_key",
]
