"""A run directory whose history a test writes generation by generation, through the store's own
``History`` (one transaction per generation, WAL), as a running search does: for the report's
and the dashboard's tests, without training anything."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from evonas.store import History
from evonas.store.history import genome_key

# The space of `mlp` with these options: num_layers, width_0, activation_0, width_1, activation_1.
ENCODING = {"name": "mlp", "options": {"max_layers": 2, "widths": [16, 32]}}
CARDINALITIES = (2, 2, 3, 2, 3)
NAMES = ("num_layers", "width_0", "activation_0", "width_1", "activation_1")
LABELS = (("1", "2"), ("16", "32"), ("relu", "gelu", "tanh"), ("16", "32"),
          ("relu", "gelu", "tanh"))
HOSTILE = '<img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script>&amp;'


def width_decides(genome: Sequence[int]) -> float:
    """Fitness decided by ``width_0`` alone (the other genes add nothing)."""
    return 0.6 + 0.3 * genome[1]


class GrowingRun:
    """A run directory with ``config.yaml``, ``run.json`` and a history that grows on
    :meth:`commit`.

    Args:
        path: the directory (created).
        per_generation: rows per generation.
        objectives: the config's ``search.objectives``.
        fitness: the fitness of a genome.
        hostile: put ``HOSTILE`` into a description, a metric's name and a failure reason.
        seed: the genomes' seed.
    """

    def __init__(self, path: Path, per_generation: int = 4,
                 objectives: Sequence[dict[str, Any]] = ({"name": "val_acc", "direction": "max"},),
                 fitness: Callable[[Sequence[int]], float] = width_decides,
                 hostile: bool = False, seed: int = 0):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        config = {"encoding": ENCODING, "search": {"objectives": list(objectives)}}
        (self.path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (self.path / "run.json").write_text(json.dumps({"fingerprint": "test"}))
        self.history = History(self.path / "history.sqlite")
        self.per_generation, self.fitness, self.hostile = per_generation, fitness, hostile
        self.rng = np.random.default_rng(seed)
        self.generation = -1

    def rows(self, generation: int, start: int) -> list[dict[str, Any]]:
        out = []
        for k in range(self.per_generation):
            genome = [int(self.rng.integers(c)) for c in CARDINALITIES]
            fit = self.fitness(genome)
            parents = [] if generation == 0 else [start - self.per_generation + k]
            description = {"encoding": "mlp", "input_shape": [8, 8, 1], "num_classes": 10,
                           "layers": [{"op": "dense", "width": LABELS[1][genome[1]],
                                       "activation": LABELS[2][genome[2]]}]}
            metrics = {"val_acc": fit, "depth": 1.0}
            row = {"id": start + k, "genome": genome, "genome_key": genome_key(genome),
                   "description": description, "parents": parents, "fitness": fit,
                   "metrics": metrics, "val_acc": fit, "params": 1000 * (1 + genome[1]),
                   "flops": 2000 * (1 + genome[1]), "estimate": "trained", "fidelity": 20}
            if self.hostile and k == 0:
                description["layers"][0]["op"] = HOSTILE
                metrics[HOSTILE] = 1.0
            if self.hostile and k == 1:
                row.update(failed=True, reason=HOSTILE, fitness=None)
            out.append(row)
        return out

    def commit(self) -> int:
        """Commits the next generation (one transaction); returns the row count."""
        self.generation += 1
        rows = self.rows(self.generation, self.history.count())
        fits = [r["fitness"] for r in rows if r["fitness"] is not None]
        self.history.append_generation(self.generation, rows, {
            "best": max(fits), "median": float(np.median(fits)), "worst": min(fits),
            "wall_seconds": 0.1})
        return self.history.count()

    def close(self) -> None:
        self.history.close()
