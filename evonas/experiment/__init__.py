"""Experiments: the typed configuration of a search, its host loop, the final steps, multi-process
coordination, and the library behind the command line (``bench``, ``describe``,
``front_summary``).

Loaded on first use, name by name: a multi-process run joins ``jax.distributed``
(:mod:`evonas.experiment.distributed`) before anything that starts JAX's backend (the strategies'
evosax does when imported) may be imported.
"""

import importlib

# module -> the names it gives this package
_MODULES = {
    "config": ("DatasetConfig", "DisplayConfig", "DistilConfig", "EncodingConfig",
               "EvaluatorConfig", "ExperimentConfig", "FinalConfig", "FrontConfig",
               "HalvingConfig", "InheritConfig", "LatencyConfig", "ObjectiveConfig",
               "PrefilterConfig", "PruneConfig", "RetrainConfig", "SearchConfig",
               "StrategyConfig"),
    "bench": ("bench",),
    "describe": ("describe", "read_genome"),
    "classifier": ("Classifier", "search_classifier"),
    "finish": ("STEPS", "distil_run", "finetune_run", "front_summary", "parse_budgets",
               "prune_run", "retrain_run"),
    "finish.export": ("evaluate_model",),
    "runner": ("Experiment", "ExperimentResult", "InfeasibleError"),
}
_WHERE = {name: f"evonas.experiment.{module}" for module, names in _MODULES.items()
          for name in names}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'evonas.experiment' has no attribute {name!r}")


__all__ = sorted(_WHERE)
