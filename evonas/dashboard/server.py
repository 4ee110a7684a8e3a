"""``evonas dashboard``: a local web server of one or more run directories, live and read-only.

The standard library's ``http.server.ThreadingHTTPServer`` serves a handful of fixed routes
(docs/dashboard.md says why no web framework):

==================================  ==========================================================
``/``                               the page: the report's interactive views, in live mode
``/static/app.js``, ``app.css``     the views' script and style (``evonas/report/assets``)
``/static/plotly-<hash>.min.js``    plotly.js, from the installed ``plotly`` package
``/api/runs``                       the run directories' names
``/api/runs/<i>?since=N&epoch=E``   run ``i``'s rows from the ``N``-th on, and its front
``/api/runs/<i>/importance``        gene importance (fitted when the history has grown)
``/api/runs/<i>/evaluations/<id>``  one row's description and metrics
==================================  ==========================================================

Nothing else is served: no path of a request is ever joined to a path on disk. The histories
are read through read-only SQLite connections in one read transaction per refresh
(``evonas.report.history.read_snapshot``): a run keeps committing generations while the
dashboard reads, and nothing in a run directory is written, executed or followed. The server
binds 127.0.0.1 unless told otherwise, and answers only requests addressed to the name it was
bound to (``Host``), so a web page elsewhere can't reach it through a rebound DNS name.
"""

from __future__ import annotations

import errno
import hashlib
import html
import ipaddress
import re
import socket
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from evonas.report import interactive
from evonas.report.history import Evaluation, left_out, read_snapshot
from evonas.report.html import STYLE
from evonas.report.views import (
    best_id,
    details_json,
    front_json,
    generation_json,
    importance_json,
    progress_json,
    row_json,
    run_meta,
    script_json,
    summary_json,
)
from evonas.store.layout import HISTORY, RUN_INFO, RunPaths

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8050
REFRESH_SECONDS = 0.5  # a run's history is read at most this often, however many pages poll
POLL_SECONDS = 1.0  # how often the page asks for what is new

_CSP = ("default-src 'none'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; font-src data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'")
_RUN = re.compile(r"^/api/runs/(\d{1,6})$")
_IMPORTANCE = re.compile(r"^/api/runs/(\d{1,6})/importance$")
_EVALUATION = re.compile(r"^/api/runs/(\d{1,6})/evaluations/(\d{1,12})$")


def check_run_dir(path: str | Path) -> Path:
    """``path`` if it is a run directory (it holds ``run.json`` or ``history.sqlite``: a run
    that has just started has the first), else a one-line ``ValueError`` naming it."""
    p = Path(path)
    if not p.exists():
        raise ValueError(f"no run directory at {path}; pass a directory that `evonas run` "
                         "wrote (evonas run --run-dir DIR)")
    if not p.is_dir():
        raise ValueError(f"{path} is a file, not a run directory; pass the directory that "
                         f"holds its {RUN_INFO} and {HISTORY}")
    paths = RunPaths(p)
    if not paths.run_info.is_file() and not paths.history.is_file():
        raise ValueError(f"{path} is not an evonas run directory (it has neither {RUN_INFO} nor "
                         f"{HISTORY}); pass a directory that `evonas run --run-dir` writes")
    return p


class RunView:
    """One run directory as the dashboard shows it, read incrementally.

    Each refresh reads only the rows committed since the last one (one read transaction, so
    rows and generations agree). When the generations it had are no longer a prefix of the
    history's (``evonas resume`` dropped generations it computes again), it reads everything
    again and counts a new ``epoch``, which tells the page to start over.
    """

    def __init__(self, index: int, path: Path):
        self.index, self.path = index, path
        self._lock = threading.Lock()
        self._importance_lock = threading.Lock()
        self._evaluations: list[Evaluation] = []
        self._by_id: dict[int, Evaluation] = {}
        self._rows: list[dict[str, Any]] = []
        self._generations: list[dict[str, Any]] = []
        self._epoch = 0
        self._last_key: str | None = None  # genome_key of the newest row read
        self._checked = False
        self._refreshed = -float("inf")
        self._meta: dict[str, Any] = {"name": path.resolve().name}
        self._genes: Any = None
        self._objectives: list[tuple[str, bool]] = [("fitness", True)]
        self._front: dict[str, Any] = {"axes": [], "ids": [], "hypervolume": []}
        self._best: int | None = None
        self._progress: list[list[float]] = []
        self._summary: dict[str, int] = {}
        self._importance: tuple[int, int, dict[str, Any]] | None = None
        self.error: str | None = None
        self._skipped: dict[str, None] = {}  # rows left out (evonas would not have written them)

    @property
    def name(self) -> str:
        return str(self._meta["name"])

    def refresh(self, force: bool = False) -> None:
        """Reads what was committed since the last refresh (at most every REFRESH_SECONDS).

        Raises:
            ValueError: only on the first read (a damaged history); later errors are kept in
                ``error`` and shown on the page, and the last good data stays.
        """
        with self._lock:
            now = time.monotonic()
            if not force and now - self._refreshed < REFRESH_SECONDS:
                return
            self._refreshed = now
            start = self._evaluations[-1].id + 1 if self._evaluations else 0
            reset = False
            try:
                snap = read_snapshot(self.path, since=start, check=not self._checked)
                known = [_signature(g) for g in self._generations]
                seen = [_signature(g) for g in snap.generations]
                if seen[:len(known)] != known or (
                        self._last_key is not None and snap.before_key != self._last_key):
                    snap = read_snapshot(self.path, since=0, check=False)
                    self._evaluations, self._by_id, self._rows = [], {}, []
                    self._epoch, reset, self._skipped = self._epoch + 1, True, {}
            except ValueError as err:
                if not self._checked:
                    raise
                self.error = str(err).splitlines()[0]
                return
            self._skipped.update(dict.fromkeys(snap.skipped))
            self._checked = True
            self.error = left_out(self.path, list(self._skipped)) if self._skipped else None
            self._generations = snap.generations
            if snap.last_key is not None:
                self._last_key = snap.last_key
            if not snap.evaluations and self._genes is not None and not reset:
                return
            self._evaluations.extend(snap.evaluations)
            self._by_id.update((e.id, e) for e in snap.evaluations)
            self._meta, self._genes, objectives = run_meta(self.path, self._evaluations)
            if objectives != self._objectives:
                self._objectives = objectives
                self._rows = [row_json(e, objectives) for e in self._evaluations]
            else:
                self._rows.extend(row_json(e, objectives) for e in snap.evaluations)
            self._front = front_json(self._evaluations, objectives)
            self._best = best_id(self._evaluations, objectives[0][1])
            self._progress = progress_json(self._evaluations, objectives[0][1])
            self._summary = {**summary_json(self._evaluations), "shown": len(self._evaluations)}

    def rows(self, since: int, epoch: int | None) -> dict[str, Any]:
        """The rows from the ``since``-th on, as the page's script takes them; all of them with
        ``reset`` when ``epoch`` is not the current one (or the page has none yet)."""
        self.refresh()
        with self._lock:
            reset = epoch != self._epoch or since > len(self._rows)
            start = 0 if reset else since
            return {**self._meta, "epoch": self._epoch, "reset": reset,
                    "total": len(self._rows), "rows": self._rows[start:],
                    "generations": [generation_json(g) for g in self._generations],
                    "front": self._front, "best": self._best, "progress": self._progress,
                    "summary": self._summary,
                    "error": self.error}

    def importance(self) -> dict[str, Any]:
        """Gene importance of the rows so far, fitted again only when there are new ones."""
        self.refresh()
        with self._importance_lock:  # one fit at a time; polling rows goes on meanwhile
            with self._lock:
                evaluations, genes = list(self._evaluations), self._genes
                objectives, key = list(self._objectives), (self._epoch, len(self._evaluations))
            cached = self._importance
            if cached is not None and cached[:2] == key:
                return cached[2]
            out = (importance_json(evaluations, genes, objectives) if genes is not None
                   else {"objectives": []})
            self._importance = (*key, out)
            return out

    def details(self, row_id: int) -> dict[str, Any] | None:
        """One row's description and metrics, or None when the history has no such row."""
        self.refresh()
        with self._lock:
            e = self._by_id.get(row_id)
        return None if e is None else details_json(e)


def _signature(generation: dict[str, Any]) -> tuple[Any, ...]:
    return (generation["generation"], generation["evaluations"], generation["wall_seconds"],
            generation["finished_at"])


def page(names: Sequence[str], plotly_url: str) -> str:
    """The dashboard's page: the report's views in live mode (the runs' names as JSON)."""
    config = {"mode": "live", "interval": POLL_SECONDS, "runs": [{"name": n} for n in names]}
    title = ", ".join(names)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>evonas dashboard: {html.escape(title)}</title>
<style>{STYLE}</style>
<link rel="stylesheet" href="static/app.css">
</head>
<body>
<h1>evonas dashboard: {html.escape(title)}</h1>
{interactive.app_markup()}
{interactive.config_script(config)}
<script src="{plotly_url}"></script>
<script src="static/app.js"></script>
</body>
</html>
"""


class DashboardServer(ThreadingHTTPServer):
    """The HTTP server of :func:`make_server`; ``runs`` are its :class:`RunView` s."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], runs: list[RunView], family: int):
        self.address_family = family
        self.runs = runs
        super().__init__(address, _Handler)
        host, port = self.server_address[:2]
        self.port = int(port)
        shown = f"[{host}]" if ":" in str(host) else str(host)
        self.url = f"http://{shown}:{self.port}/"
        self.allowed_hosts = _allowed_hosts(str(host), self.port)
        digest = hashlib.sha256(interactive.plotly_js()).hexdigest()[:12]
        plotly_url = f"static/plotly-{digest}.min.js"
        self.files = {
            "/": (page([r.name for r in runs], plotly_url).encode("utf-8"),
                  "text/html; charset=utf-8", "no-store"),
            "/static/app.js": (interactive.asset("app.js"), "text/javascript; charset=utf-8",
                               "no-cache"),
            "/static/app.css": (interactive.asset("app.css"), "text/css; charset=utf-8",
                                "no-cache"),
            f"/{plotly_url}": (interactive.plotly_js(), "text/javascript; charset=utf-8",
                               "max-age=31536000, immutable"),
        }


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """The ``Host`` headers answered: the loopback names for a loopback address, None (any)
    when the user chose to listen on the network."""
    if not _loopback(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", f"[{host}]" if ":" in host else host}
    return frozenset(f"{n}:{port}" for n in names) | frozenset(names if port == 80 else ())


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "evonas-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the dashboard prints its address once, not every poll

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _send(self, status: int, data: bytes, content_type: str, cache: str = "no-store",
              body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cross-Origin-Resource-Policy", "same-origin")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def _json(self, value: Any, status: int = 200, body: bool = True) -> None:
        self._send(status, script_json(value).encode("utf-8"),
                   "application/json; charset=utf-8", body=body)

    def _error(self, status: HTTPStatus, message: str, body: bool) -> None:
        if self.path.startswith("/api/"):
            self._json({"error": message}, int(status), body)
        else:
            self._send(int(status), f"{message}\n".encode(), "text/plain; charset=utf-8",
                       body=body)

    def _run(self, index: str) -> RunView | None:
        i = int(index)
        return self.server.runs[i] if i < len(self.server.runs) else None

    def _serve(self, body: bool) -> None:
        allowed = self.server.allowed_hosts
        if allowed is not None and self.headers.get("Host", "") not in allowed:
            return self._error(HTTPStatus.FORBIDDEN, "this dashboard answers only requests to "
                               f"{self.server.url}", body)
        url = urlsplit(self.path)
        path = url.path
        if path in self.server.files:
            data, content_type, cache = self.server.files[path]
            return self._send(200, data, content_type, cache, body)
        if path == "/api/runs":
            return self._json({"runs": [{"index": r.index, "name": r.name}
                                        for r in self.server.runs]}, body=body)
        match = _RUN.match(path) or _IMPORTANCE.match(path) or _EVALUATION.match(path)
        run = self._run(match.group(1)) if match else None
        if run is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no such page: {path[:200]}", body)
        try:
            if match.re is _RUN:
                query = parse_qs(url.query)
                since = _int(query.get("since", ["0"])[0])
                epoch = query.get("epoch", [None])[0]
                return self._json(run.rows(since, None if epoch is None else _int(epoch)),
                                  body=body)
            if match.re is _IMPORTANCE:
                return self._json(run.importance(), body=body)
            found = run.details(int(match.group(2)))
            if found is None:
                return self._error(HTTPStatus.NOT_FOUND, f"run {run.index} has no evaluation "
                                   f"#{match.group(2)}", body)
            return self._json(found, body=body)
        except ValueError as err:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(err).splitlines()[0], body)


def _int(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return 0


def _free_port(host: str, family: int, after: int) -> int | None:
    """A port after ``after`` that is free on ``host`` now (None: none of the next 50)."""
    for port in range(after + 1, min(after + 51, 65536)):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
                return port
            except OSError:
                continue
    return None


def make_server(run_dirs: Sequence[str | Path], host: str = DEFAULT_HOST,
                port: int = DEFAULT_PORT) -> DashboardServer:
    """Checks the run directories, reads each once and binds the server (not yet serving).

    Args:
        run_dirs: one or more run directories (a run being written is fine).
        host: the address to listen on; 127.0.0.1 by default (only this machine).
        port: the TCP port; 0 picks a free one (``server.port`` says which).

    Raises:
        ValueError: one line naming the bad directory, port or host (a port in use names a
            free one); nothing is bound then.
    """
    if not run_dirs:
        raise ValueError("evonas dashboard needs at least one run directory")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"--port must be an integer from 0 to 65535 (0: any free port); "
                         f"got {port!r}")
    paths = [check_run_dir(d) for d in run_dirs]
    runs = [RunView(i, p) for i, p in enumerate(paths)]
    for run in runs:
        run.refresh(force=True)  # a damaged history is one line now, not a page of errors
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ValueError(f"can't listen on host {host!r}: {err.strerror}; pass --host "
                         "127.0.0.1 (this machine only) or an address of this machine") from None
    family, address = infos[0][0], infos[0][4][0]
    try:
        return DashboardServer((address, port), runs, family)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            free = _free_port(address, family, port)
            hint = f"--port {free} (free now)" if free else "another --port"
            raise ValueError(f"port {port} on {host} is in use (another dashboard or program "
                             f"listens there); pass {hint}, or --port 0 for any free port"
                             ) from None
        if err.errno == errno.EACCES:
            raise ValueError(f"port {port} on {host} needs privileges this user lacks; pass "
                             "--port 1024 or higher, or --port 0 for any free port") from None
        raise ValueError(f"can't listen on {host} port {port}: {err.strerror or err}; pass "
                         "--host 127.0.0.1 or another --port") from None


def serve(run_dirs: Sequence[str | Path], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          announce: Any = print) -> None:
    """Serves the dashboard of ``run_dirs`` until interrupted (Ctrl-C).

    Args:
        run_dirs, host, port: as for :func:`make_server`.
        announce: called with the line that says where the page is (default: printed).
    """
    server = make_server(run_dirs, host, port)
    names = ", ".join(str(r.path) for r in server.runs)
    announce(f"evonas dashboard: {server.url} ({names}); Ctrl-C stops it")
    if server.allowed_hosts is None:
        announce(f"evonas dashboard: listening on {host}: anyone who can reach this machine "
                 "can read these runs")
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
