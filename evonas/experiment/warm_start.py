"""Warm starts (``search.warm_start: DIR``, ``evonas run --warm-start DIR``): what an earlier run
of the same search space hands a new one, read once and kept in the new run directory.

The earlier run is only read: its best genomes (best first, each architecture once), the
distribution of its last generation, where its strategy kept one (ASNG, PBIL, REINFORCE, DARTS,
GDAS, DrNAS), and its one-shot supernet's parameters, where it trained one and this run's
evaluator trains one too (copied once into this run's ``supernet/``). Its fitness values are
not carried over; the new run evaluates the genomes again on its own data
(:class:`~evonas.strategies.warm_start.WarmStart`). The earlier directory may come from someone
else: it is opened read-only, nothing in it is executed (arrays are read without pickles), and
what is taken from it is validated against this run's space.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from evonas.experiment.loading import run_config
from evonas.store import RunDir, RunDirError
from evonas.store.atomic import atomic_write_text, read_json
from evonas.store.layout import RunPaths
from evonas.strategies.warm_start import WarmStart

FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Seed:
    """What a warm start takes from an earlier run.

    Attributes:
        source: the earlier run's directory, as given.
        genomes: ``int32[N, G]``, its best successful architectures, best first.
        probabilities: ``float32[G, K]``, the distribution of its last generation, or None.
    """

    source: str
    genomes: np.ndarray
    probabilities: np.ndarray | None

    def to_json(self) -> str:
        resolved = os.path.abspath(os.path.expanduser(self.source))  # for the report's chain
        return json.dumps({"format": FORMAT, "source": self.source, "resolved": resolved,
                           "genomes": self.genomes.tolist(),
                           "probabilities": None if self.probabilities is None
                           else self.probabilities.tolist()}, indent=1) + "\n"


def how_many(strategy: Any) -> int:
    """How many earlier genomes a strategy can use: its population (at least one batch)."""
    batch = int(strategy.batch_size)
    return max(batch, int(getattr(strategy, "population_size", batch) or batch))


def read_seed(source: str, config: Any, space: Any, count: int, run_dir: Any = None) -> Seed:
    """Reads the earlier run at ``source`` for a run of ``config`` over ``space``.

    Raises:
        ValueError: one line: not a run directory, unreadable, the run itself, another search
            space, or no generation committed yet.
    """
    where = f"search.warm_start {source!r}"
    path = Path(os.path.expanduser(source))
    if run_dir is not None and path.resolve() == Path(run_dir).resolve():
        raise ValueError(f"{where} is this run's own directory: warm-start from an earlier one")
    try:
        with RunDir(path, readonly=True) as run:
            earlier = run_config(run)
            started = run.paths.history.is_file()
            generations = run.history.generations() if started else []
            rows = run.history.rows() if started else []
    except (RunDirError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{where} can't be read: {first}") from None
    if (earlier.encoding.name, earlier.encoding.options) != (config.encoding.name,
                                                            config.encoding.options):
        raise ValueError(
            f"{where} searched encoding {earlier.encoding.name!r} with options "
            f"{dict(earlier.encoding.options)}; this run searches {config.encoding.name!r} with "
            f"{dict(config.encoding.options)}: a warm start needs the same search space")
    if not generations:
        raise ValueError(f"{where} has no finished generation yet: let it finish one, or start "
                         "without a warm start")
    maximize = earlier.search.objectives[0].maximize
    ok = [r for r in rows if not r["failed"] and r["fitness"] is not None
          and math.isfinite(r["fitness"])]
    ok.sort(key=lambda r: ((-r["fitness"]) if maximize else r["fitness"], r["id"]))
    genomes, seen = [], set()
    for row in ok:
        genome = tuple(int(v) for v in row["genome"])
        if genome not in seen:
            seen.add(genome)
            genomes.append(genome)
        if len(genomes) == count:
            break
    if not genomes:
        raise ValueError(f"{where} has no successful architecture to start from")
    genomes = np.asarray(genomes, np.int32)
    if genomes.shape[1] != space.num_genes or not bool(np.all(np.asarray(
            space.contains(genomes)))):
        raise ValueError(f"{where} holds genomes outside this run's search space")
    return Seed(str(source), genomes, _distribution(generations[-1].get("beliefs"), space))


def _distribution(beliefs: Any, space: Any) -> np.ndarray | None:
    """A history generation's ``beliefs`` (``{gene: {value: probability}}``) as
    ``float32[G, K]`` in this space's order; None when absent or not this space's."""
    if not isinstance(beliefs, dict):
        return None
    cards = list(space.cardinalities)
    out = np.zeros((len(cards), max(cards)), np.float32)
    for g, name in enumerate(space.names):
        gene = beliefs.get(name)
        if not isinstance(gene, dict):
            return None
        choices = space.choices[g] if space.choices else None
        for k in range(cards[g]):
            value = gene.get(str(choices[k]) if choices is not None else str(k))
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                return None
            out[g, k] = value
        if abs(out[g].sum() - 1.0) > 1e-3:
            return None
    return out


def hand_over_supernet(seed: Seed, run: RunDir) -> bool:
    """Copies the earlier run's one-shot supernet parameters into this run's ``supernet/`` (as
    :data:`~evonas.evaluators.oneshot.WARM_START`), once, for a one-shot or few-shot evaluator to
    start from; returns whether there was one. Only arrays are read (no pickles), and only the
    parameters, not the optimiser's state.

    Raises:
        ValueError: the earlier run's supernet file is unreadable (one line).
    """
    from evonas.evaluators.oneshot import WARM_START
    from evonas.store import ParamStore

    mine = ParamStore(run.paths.supernet, run.path)
    if WARM_START in mine:
        return True
    source = Path(os.path.expanduser(seed.source))
    earlier = ParamStore(RunPaths(source).supernet, source)
    try:
        arrays = earlier.load_arrays("state")
    except ValueError as err:
        raise ValueError(f"search.warm_start {seed.source!r}: {err}") from None
    if arrays is None:
        return False
    mine.save_arrays(WARM_START, {k: v for k, v in arrays.items() if k.startswith("['params']")})
    return True


def save_seed(run: RunDir, seed: Seed) -> None:
    """Keeps what was taken in the run directory (never following a link)."""
    atomic_write_text(run.paths.warm_start, seed.to_json(), run.path)


def load_seed(run_dir: Any, space: Any) -> Seed | None:
    """What a warm-started run took, from its own directory; None when it was not kept yet.

    Raises:
        ValueError: one line: the kept file is not what evonas writes for this space.
    """
    path = RunPaths(run_dir).warm_start
    if not os.path.lexists(path):
        return None
    data = read_json(path)
    try:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a warm start evonas wrote")
        genomes = np.asarray(data["genomes"], np.int64)
        probabilities = data["probabilities"]
        if genomes.ndim != 2 or genomes.shape[1] != space.num_genes or not len(genomes):
            raise ValueError(f"genomes of shape {genomes.shape}")
        seed = Seed(str(data["source"]), genomes.astype(np.int32),
                    None if probabilities is None else np.asarray(probabilities, np.float32))
        WarmStart.check(space, seed.genomes, seed.probabilities)
    except (KeyError, TypeError, ValueError, OverflowError) as err:
        raise ValueError(f"{path} can't be used ({str(err).splitlines()[0]}): this run can't "
                         "continue as it started") from None
    return seed


def warm(strategy: Any, seed: Seed, floor: float = 0.05) -> WarmStart:
    """``strategy`` started from ``seed``."""
    return WarmStart(strategy, seed.genomes, seed.probabilities, floor)
