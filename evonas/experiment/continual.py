"""Continual optimisation: a chain of searches over one search space, each warm-started from the
one before (``evonas continual A.yaml B.yaml ... --root DIR``; Python: :func:`continual`).

Each experiment file is one step of the chain: new data (a shifted set, more classes, another
image size resized to the first), new objectives or constraints (a new latency or FLOPs budget),
another strategy. Run ``i`` goes to ``ROOT/<i>-<file stem>`` and starts from run ``i - 1``
exactly as ``evonas run B.yaml --warm-start RUN_A`` does (:mod:`evonas.experiment.warm_start`):
the earlier run's best architectures, distribution and supernet, re-evaluated on the new data.
Every file is read and checked before the first run starts. Running the same command again
continues: a finished run is left as it is, an interrupted one resumes where it stopped. The last
run's report shows how the front moved along the chain (:mod:`evonas.report.continual`), as does
``evonas report`` of any warm-started run.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evonas.experiment.config import ExperimentConfig


@dataclasses.dataclass(frozen=True)
class Step:
    """One run of a chain: its experiment and its directory."""

    config: ExperimentConfig
    run_dir: Path
    source: str


def plan(configs: Sequence[ExperimentConfig | str | os.PathLike], root: str | os.PathLike,
         overrides: Sequence[str] = ()) -> list[Step]:
    """The chain's runs: every experiment read, overridden and checked, each run after the
    first warm-started from the one before; nothing is created.

    Raises:
        ValueError: one line naming the file: fewer than two, an experiment that can't be read,
            one of another search space than the first, or one that sets its own
            ``search.warm_start`` after the first (the chain sets it).
    """
    if len(configs) < 2:
        raise ValueError(f"continual needs two experiments or more (one per step of the "
                         f"chain); got {len(configs)}: for one, use evonas run")
    root = Path(os.path.expanduser(os.fspath(root))).resolve()
    steps: list[Step] = []
    for i, given in enumerate(configs, start=1):
        if isinstance(given, ExperimentConfig):
            config, source, stem = given, f"experiment {i}", f"step{i}"
        else:
            source, stem = os.fspath(given), Path(given).stem
            try:
                config = ExperimentConfig.from_yaml(given)
            except (OSError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                raise ValueError(f"continual: {source}: {first}") from None
        try:
            config = config.with_overrides(list(overrides)) if overrides else config
            config.check_names()
        except ValueError as err:
            raise ValueError(f"continual: {source}: {err}") from None
        if config.evaluator.tabular:
            raise ValueError(f"continual: {source} looks architectures up in a table: a chain "
                             "re-evaluates them on new data, so it needs a training evaluator")
        if steps:
            first = steps[0]
            if (config.encoding.name, config.encoding.options) != (
                    first.config.encoding.name, first.config.encoding.options):
                raise ValueError(
                    f"continual: {source} searches encoding {config.encoding.name!r} with "
                    f"options {dict(config.encoding.options)}, but {first.source} searches "
                    f"{first.config.encoding.name!r} with {dict(first.config.encoding.options)}:"
                    " a chain searches one space (resize other data to the first's shape with "
                    "dataset.image_size)")
            if config.search.warm_start is not None:
                raise ValueError(f"continual: {source} sets search.warm_start "
                                 f"{config.search.warm_start!r}; in a chain each run starts from"
                                 " the one before: remove it")
            config = dataclasses.replace(config, search=dataclasses.replace(
                config.search, warm_start=os.fspath(steps[-1].run_dir)))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or f"step{i}"
        steps.append(Step(config, root / f"{i}-{name}", source))
    return steps


def continual(configs: Sequence[ExperimentConfig | str | os.PathLike],
              root: str | os.PathLike, overrides: Sequence[str] = (),
              callbacks: Sequence[Any] = ()) -> list[Any]:
    """Runs (or continues) a chain of searches, each warm-started from the one before.

    Args:
        configs: the steps, in order: experiment files or :class:`ExperimentConfig` objects
            of one search space.
        root: the directory that holds one run directory per step (``<i>-<file stem>``).
        overrides: ``section.key=value`` settings applied to every step (the CLI's ``--set``).
        callbacks: given to every run.

    Returns:
        Each run's :class:`~evonas.experiment.ExperimentResult`, in order.

    Raises:
        ValueError: a step that can't be run (:func:`plan`), before anything is created.
    """
    from evonas.experiment.runner import Experiment

    return [Experiment(step.config, run_dir=step.run_dir, callbacks=callbacks).run()
            for step in plan(configs, root, overrides)]
