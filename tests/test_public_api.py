"""The public API of ``evonas`` for scripts: every name it lists resolves."""

import evonas


def test_every_public_name_resolves():
    missing = [name for name in evonas.__all__ if getattr(evonas, name, None) is None]
    assert not missing
    assert len(set(evonas.__all__)) == len(evonas.__all__)
    for name in ("BayesianOptimization", "Reinforce", "QLearning", "DistributionSearch",
                 "GridSearch", "LocalSearch", "load_model", "load_serving", "export_serving",
                 "distil_run", "prune_run"):
        assert name in evonas.__all__
