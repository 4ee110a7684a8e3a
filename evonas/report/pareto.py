"""``pareto_front`` for reports: re-exported from :mod:`evonas.pareto`, where it lives."""

from evonas.pareto import hypervolume, pareto_front

__all__ = ["hypervolume", "pareto_front"]
