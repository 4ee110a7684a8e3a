"""Variation and selection on ``int32[P, G]`` genome arrays: pure, jit-able functions."""

from evonas.operators.crossover import (
    CROSSOVERS,
    one_point_crossover,
    two_point_crossover,
    uniform_crossover,
)
from evonas.operators.hashing import first_occurrence, genome_hash
from evonas.operators.mutation import mutate, mutate_one
from evonas.operators.nondominated import crowded_tournament, crowding_distance, non_dominated_rank
from evonas.operators.repair import repair
from evonas.operators.selection import (
    tournament_contestants,
    tournament_selection,
    tournament_winners,
    truncation_selection,
)

__all__ = [
    "CROSSOVERS",
    "crowded_tournament",
    "crowding_distance",
    "first_occurrence",
    "genome_hash",
    "mutate",
    "mutate_one",
    "non_dominated_rank",
    "one_point_crossover",
    "repair",
    "tournament_contestants",
    "tournament_selection",
    "tournament_winners",
    "truncation_selection",
    "two_point_crossover",
    "uniform_crossover",
]
