"""A search driven from Python: config in code, run, read the history with the standard library.

Run: python examples/script_experiment.py [RUN_DIR]   (about a minute on a 2-core CPU)
"""

import sqlite3
import sys

from evonas import Experiment, ExperimentConfig

config = ExperimentConfig.from_dict({
    "encoding": {"name": "mlp", "options": {"max_layers": 2, "widths": [32, 64]}},
    "dataset": {"name": "digits"},
    "search": {"population_size": 8, "generations": 3, "seed": 0},
    "train": {"steps": 100, "batch_size": 64, "plan": "masked"},
    "final": {"retrain": {"top_k": 2, "steps": 500}},
    "display": {"report": False},
})
result = Experiment(config, run_dir=sys.argv[1] if len(sys.argv) > 1 else None).run()

db = sqlite3.connect(result.run_dir / "history.sqlite")
for gen, best, evals in db.execute("SELECT generation, best, evaluations FROM generations"):
    print(f"generation {gen}: best val_acc {best:.3f} over {evals} evaluations")
print(f"retrained best: test accuracy {result.final['best_test_acc']:.3f}")
