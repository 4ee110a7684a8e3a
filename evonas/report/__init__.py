"""Reports of a run directory: plots (PNG) and one self-contained HTML page."""

from evonas.report.history import Evaluation, read_evaluations
from evonas.report.write import write_report

__all__ = ["Evaluation", "read_evaluations", "write_report"]
