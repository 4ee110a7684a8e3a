"""The ``retrain`` and ``ensemble`` steps: the top k retrained on train + validation and tested
(or read from the table), and their ensemble (the averaged logits), whose other members are kept
in ``ensemble/<rank>/`` for ``evonas distil``."""

from __future__ import annotations

import jax
import numpy as np

from evonas.experiment.finish.context import Finish, Member, top_k
from evonas.train import accuracy


class Retrain:
    """Scores the top ``final.retrain.top_k`` by search fitness, best first."""

    name = "retrain"

    def wanted(self, finish: Finish) -> bool:
        return finish.config.final.retrain.top_k > 0

    def run(self, finish: Finish) -> None:
        config = finish.config
        maximize = config.search.objectives[0].maximize
        chosen = top_k(finish.rows, config.final.retrain.top_k, maximize)
        steps = config.final.retrain.steps
        for rank, row in enumerate(chosen):
            if finish.scorer.trains:
                finish.progress(f"retraining {rank + 1} of {len(chosen)}, the best by search "
                                "fitness")
            params, scores, logits = finish.score(row, steps,
                                                  jax.random.fold_in(finish.key, rank))
            finish.members.append(Member(rank + 1, row, params, scores, logits))
        models = [{"rank": m.rank, "id": m.row["id"], "genome": m.row["genome"],
                   "fitness": m.row["fitness"], "params": m.row["params"], **m.scores}
                  for m in finish.members]
        if not models:
            return
        if finish.scorer.trains:
            finish.summary.update(retrain_steps=steps, models=models,
                                  best_test_acc=models[0]["test_acc"])
        else:
            table = finish.scorer.table
            finish.summary.update(protocol=table.protocol, benchmark=table.name, models=models,
                                  **{f"best_{k}": v for k, v in finish.members[0].scores.items()})


class Ensemble:
    """The retrained models' averaged logits on the test split; the members other than the best
    exported to ``ensemble/<rank>/``."""

    name = "ensemble"

    def wanted(self, finish: Finish) -> bool:
        return (finish.config.final.retrain.ensemble and finish.scorer.trains
                and len(finish.members) >= 2)

    def run(self, finish: Finish) -> None:
        members = finish.members
        finish.summary["ensemble_size"] = len(members)
        finish.summary["ensemble_test_acc"] = accuracy(
            np.mean([m.logits for m in members], axis=0), finish.dataset.y_test)
        for m in members[1:]:
            finish.export(finish.paths.ensemble / str(m.rank), m.row, m.params,
                          {"test_acc": m.scores["test_acc"]}, {"rank": m.rank})
