"""Experiments: the typed configuration of a search, its host loop, the final steps, multi-process
coordination, and the library behind the command line (``bench``, ``describe``,
``front_summary``).

Loaded on first use, name by name: a multi-process run joins ``jax.distributed``
(:mod:`evonas.experiment.distributed`) before anything that starts JAX's backend (the strategies'
evosax does when imported) may be imported.
"""

import importlib

_CONFIGS = ("DatasetConfig", "DisplayConfig", "DistilConfig", "EncodingConfig",
            "EvaluatorConfig", "ExperimentConfig", "FinalConfig", "FrontConfig", "HalvingConfig",
            "InheritConfig", "LatencyConfig", "ObjectiveConfig", "PrefilterConfig",
            "PruneConfig", "RetrainConfig", "SearchConfig", "StrategyConfig")
_WHERE = {
    **dict.fromkeys(_CONFIGS, "evonas.experiment.config"),
    "bench": "evonas.experiment.bench",
    "describe": "evonas.experiment.describe",
    "read_genome": "evonas.experiment.describe",
    "STEPS": "evonas.experiment.finish",
    "front_summary": "evonas.experiment.finish",
    "parse_budgets": "evonas.experiment.finish",
    "distil_run": "evonas.experiment.finish",
    "prune_run": "evonas.experiment.finish",
    "evaluate_model": "evonas.experiment.finish.export",
    "Experiment": "evonas.experiment.runner",
    "ExperimentResult": "evonas.experiment.runner",
    "InfeasibleError": "evonas.experiment.runner",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'evonas.experiment' has no attribute {name!r}")


__all__ = sorted(_WHERE)
