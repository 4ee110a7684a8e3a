"""Objectives: metric names and directions, Pareto fronts, hypervolume, constraints.

The bottom layer beside ``evonas.genomes``: host-side (numpy) library functions and small
jit-able checks that imports nothing else of evonas, used by the evaluators, the experiment,
the report and the command line alike.

- :mod:`evonas.objectives.metrics`: the one table of metric names, directions and units.
- :mod:`evonas.objectives.pareto`: ``pareto_front`` and exact ``hypervolume``.
- :mod:`evonas.objectives.constraints`: ``parse_constraint``, ``violation``.
- :mod:`evonas.objectives.rows`: objective values of a run's history rows, its front, its
  hypervolume per generation, the best row within a budget.
"""

from evonas.objectives.constraints import (
    CONSTRAINT_OPERATORS,
    Constraint,
    parse_constraint,
    violation,
)
from evonas.objectives.metrics import (
    COST_METRICS,
    HISTORY_COLUMNS,
    MEASURED_METRICS,
    TEST_METRICS,
    TRAINED_METRICS,
    direction,
    maximize,
    unit,
)
from evonas.objectives.pareto import hypervolume, pareto_front
from evonas.objectives.rows import (
    best_within,
    feasible,
    front_rows,
    hypervolume_by_generation,
    objective_matrix,
    reference_point,
    row_value,
    unique_rows,
)

__all__ = [
    "CONSTRAINT_OPERATORS",
    "COST_METRICS",
    "HISTORY_COLUMNS",
    "MEASURED_METRICS",
    "TEST_METRICS",
    "TRAINED_METRICS",
    "Constraint",
    "best_within",
    "direction",
    "feasible",
    "front_rows",
    "hypervolume",
    "hypervolume_by_generation",
    "maximize",
    "objective_matrix",
    "parse_constraint",
    "pareto_front",
    "reference_point",
    "row_value",
    "unique_rows",
    "unit",
    "violation",
]
