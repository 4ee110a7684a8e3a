"""The live dashboard: a local web server of one or more run directories, read-only on them.

``evonas dashboard DIR [DIR ...]`` serves the report's interactive views (``evonas.report``)
of runs that may still be going, refreshed every few seconds; see ``docs/dashboard.md``.
"""

from evonas.dashboard.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DashboardServer,
    RunView,
    check_run_dir,
    make_server,
    serve,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "DashboardServer", "RunView", "check_run_dir",
           "make_server", "serve"]
