"""The final stage: an ordered table of steps over one context (:class:`Finish`).

Every step has ``name``, ``wanted(finish)`` (the config asks for it and what it needs is there)
and ``run(finish)`` (it reads the context and adds to it: retrained members, the summary, files
in the run directory), and may have ``done(finish)`` (already complete in the run directory); a
step without one is done once ``best/final.json`` exists, which the ``export`` step writes last.
A resumed run so skips what its directory holds and does what it lacks. Adding a final step is a
module here and one row in :data:`STEPS`; ``evonas distil``, ``prune`` and ``front`` run the same
steps' code on a finished run; ``evonas finetune`` (``finetune.py``) trains a found network
further on new data.
"""

from __future__ import annotations

from typing import Any, Protocol

from evonas.experiment.finish.context import (
    Finish,
    Member,
    Retrainer,
    TableReader,
    scorer_for,
    top_k,
)
from evonas.experiment.finish.distil import Distil, distil_run, read_distilled
from evonas.experiment.finish.export import Export
from evonas.experiment.finish.finetune import MODES as FINETUNE_MODES
from evonas.experiment.finish.finetune import Finetune, finetune_run, read_finetuned
from evonas.experiment.finish.front import Front, front_summary, parse_budgets
from evonas.experiment.finish.prune import Prune, prune_run, read_pruned
from evonas.experiment.finish.retrain import Ensemble, Retrain, retrain_run
from evonas.store import read_json


class Step(Protocol):
    """One step of the final stage."""

    name: str

    def wanted(self, finish: Finish) -> bool:
        """Whether the config asks for this step and what it needs is in the context."""
        ...

    def run(self, finish: Finish) -> None:
        """Does the step: reads ``finish`` and adds to it (and to the run directory)."""
        ...


STEPS: dict[str, Step] = {
    "retrain": Retrain(),  # the top k scored: retrained and tested, or read from the table
    "ensemble": Ensemble(),  # their averaged logits; the other members kept
    "distil": Distil(),  # the ensemble distilled into the best architecture
    "prune": Prune(),  # the deployed network pruned and fine-tuned
    "export": Export(),  # the best to best/, and final.json last
    "front": Front(),  # a multi-objective run's front (its own front.json)
    "finetune": Finetune(),  # the deployed network fine-tuned on other data (finetune.json)
}


def run_steps(finish: Finish) -> dict[str, Any] | None:
    """Runs every step the run wants and has not done; returns ``best/final.json`` (None when
    the run asked for no final model or none could be chosen)."""
    complete = finish.paths.final.is_file()
    for step in STEPS.values():
        done = step.done(finish) if hasattr(step, "done") else complete
        if not done and step.wanted(finish):
            step.run(finish)
    return read_json(finish.paths.final)


__all__ = [
    "STEPS",
    "Distil",
    "Ensemble",
    "Export",
    "Finetune",
    "Finish",
    "Front",
    "Member",
    "Prune",
    "Retrain",
    "Retrainer",
    "Step",
    "TableReader",
    "FINETUNE_MODES",
    "distil_run",
    "finetune_run",
    "front_summary",
    "parse_budgets",
    "prune_run",
    "read_distilled",
    "read_finetuned",
    "read_pruned",
    "retrain_run",
    "run_steps",
    "scorer_for",
    "top_k",
]
