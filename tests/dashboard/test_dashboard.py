"""evonas dashboard: a live page in a real browser while a history grows, bad input in one line,
a writer never blocked by the dashboard's reads, and only the dashboard's own routes served."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from evonas.cli import main
from evonas.dashboard import make_server
from evonas.report.history import read_snapshot
from evonas.store.history import connect_readonly
from tests.browser import PARCOORDS_DRAWN, chromium, console_errors, require_chromium, wait_for
from tests.growing_run import HOSTILE, NAMES, GrowingRun

TOTAL = "return document.getElementById('ev-table').getAttribute('data-total')"


@contextlib.contextmanager
def dashboard_process(run_dirs, *args):
    """``evonas dashboard DIR ... --port 0`` in a subprocess; yields the URL it prints."""
    process = subprocess.Popen(
        [sys.executable, "-m", "evonas.cli", "dashboard", *map(str, run_dirs), "--port", "0",
         *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout],
                     daemon=True).start()
    try:
        line = lines.get(timeout=60)
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        assert match, f"the dashboard printed {line!r}"
        yield match.group(1)
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def dashboard_thread(run_dirs):
    """The dashboard served from a thread of this process; yields the server."""
    server = make_server(run_dirs, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _request(server, path, method="GET", host=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers={"Host": host or f"127.0.0.1:{server.port}"})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_live_page_grows_as_generations_commit(tmp_path):
    require_chromium()
    run = GrowingRun(tmp_path / "live", per_generation=5, hostile=True)
    run.commit()
    try:
        with dashboard_process([run.path]) as url, chromium() as driver:
            driver.get(url)
            assert wait_for(driver, f"{TOTAL} === '5'")
            rows = "return document.querySelectorAll('#ev-table tbody tr').length"
            assert driver.execute_script(rows) == 5
            run.commit()  # one transaction, while the page keeps polling
            assert wait_for(driver, f"{TOTAL} === '10'", timeout=20)
            assert driver.execute_script(rows) == 10
            status = driver.find_element("id", "ev-status").text
            assert status.startswith("Live: live 10 evaluations")
            for view in ("ev-progress", "ev-scatter", "ev-front", "ev-lineage", "ev-parcoords"):
                wait_for(driver, f"return document.querySelector('#{view} .main-svg')")
            wait_for(driver, "return document.querySelector('#ev-importance .main-svg')")
            assert driver.execute_script(PARCOORDS_DRAWN)
            # A row clicked: its genes by the space's names, its description fetched.
            driver.find_element("css selector", "#ev-table tr[data-id='7']").click()
            wait_for(driver, "return document.querySelector('#ev-details svg.ev-arch')")
            details = driver.find_element("id", "ev-details").text
            assert all(name in details for name in NAMES) and "#7" in details
            assert "trained, 20 steps" in details and "#2" in details  # estimate, parent
            # The hostile values of a foreign history show as text and run nothing.
            driver.find_element("css selector", "#ev-table tr[data-id='5']").click()
            wait_for(driver, "return document.getElementById('ev-details').textContent"
                             ".indexOf('window.__pwned') >= 0")
            assert driver.execute_script("return window.__pwned === undefined")
            assert HOSTILE in driver.find_element("id", "ev-details").text
            assert console_errors(driver) == []
    finally:
        run.close()


def _one_line_error(capsys, argv, *wanted):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("evonas: error: ") and err.count("\n") == 1, err
    for text in wanted:
        assert text in err, err
    return err


def test_bad_input_is_one_line_naming_it(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    _one_line_error(capsys, ["dashboard", str(tmp_path / "plain")],
                    f"{tmp_path / 'plain'} is not an evonas run directory", "run.json")
    _one_line_error(capsys, ["dashboard", str(tmp_path / "nowhere")],
                    f"no run directory at {tmp_path / 'nowhere'}")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "history.sqlite").write_bytes(b"not a database" * 100)
    _one_line_error(capsys, ["dashboard", str(tmp_path / "damaged")],
                    f"{tmp_path / 'damaged' / 'history.sqlite'}")
    run = GrowingRun(tmp_path / "run")
    run.commit()
    run.close()
    _one_line_error(capsys, ["dashboard", str(run.path), "--port", "70000"],
                    "--port must be an integer from 0 to 65535", "70000")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        err = _one_line_error(capsys, ["dashboard", str(run.path), "--port", str(port)],
                              f"port {port} on 127.0.0.1 is in use", "--port 0")
    free = int(re.search(r"--port (\d+) \(free now\)", err).group(1))
    assert free != port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", free))  # the port it suggests is free indeed


def test_a_writer_commits_while_the_dashboard_reads(tmp_path):
    run = GrowingRun(tmp_path / "busy", per_generation=16)
    run.commit()
    seen, failures, stop = [], [], threading.Event()
    with dashboard_thread([run.path]) as server:
        view = server.runs[0]

        def read_directly():  # the dashboard's own read path, as fast as it goes
            while not stop.is_set():
                try:
                    view.refresh(force=True)
                    snap = read_snapshot(run.path, check=False)
                    seen.append((snap.total, sum(g["evaluations"] for g in snap.generations)))
                except Exception as err:  # reported by the assertions below
                    failures.append(repr(err))

        def read_over_http():
            while not stop.is_set():
                status, _, body = _request(server, "/api/runs/0?since=0")
                data = json.loads(body)
                seen.append((data["total"],
                             sum(g["evaluations"] for g in data["generations"])))

        readers = [threading.Thread(target=read_directly), threading.Thread(target=read_over_http)]
        for reader in readers:
            reader.start()
        # A reader holding a read transaction open does not hold the writer up either.
        held = connect_readonly(run.path / "history.sqlite")
        held.execute("BEGIN")
        before = held.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        durations = []
        try:
            for _ in range(8):
                start = time.perf_counter()
                run.commit()
                durations.append(time.perf_counter() - start)
                time.sleep(0.02)
            assert held.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == before
            held.execute("COMMIT")
            assert held.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0] == 9 * 16
        finally:
            held.close()
            stop.set()
            for reader in readers:
                reader.join(timeout=20)
            run.close()
    assert not failures, failures[:3]
    assert max(durations) < 2.0, durations  # no commit waited for a reader (busy timeout: 30 s)
    assert len(seen) > 20
    # Every snapshot holds whole generations whose rows and summaries agree.
    assert all(total == rows and total % 16 == 0 for total, rows in seen), seen[:10]
    assert len({total for total, _ in seen}) > 2  # and they saw the history grow


def test_a_resumed_history_starts_the_page_over(tmp_path):
    run = GrowingRun(tmp_path / "resumed", per_generation=4)
    run.commit()
    run.commit()
    with dashboard_thread([run.path]) as server:
        view = server.runs[0]
        first = view.rows(0, None)
        assert first["reset"] and first["total"] == 8 and first["epoch"] == 0
        assert view.rows(8, 0)["rows"] == [] and not view.rows(8, 0)["reset"]
        run.history.truncate_after(0)  # what resume does with a generation it computes again
        run.generation = 0
        run.commit()
        view.refresh(force=True)
        again = view.rows(8, 0)
        assert again["reset"] and again["epoch"] == 1 and again["total"] == 8
        assert [r["id"] for r in again["rows"]] == list(range(8))
    run.close()


def _files(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in path.iterdir()
            if p.is_file() and not p.name.endswith("-shm")}  # sqlite's readers' shared index


def test_only_its_own_routes_and_nothing_written(tmp_path):
    run = GrowingRun(tmp_path / "served", per_generation=4, hostile=True)
    run.commit()
    before = _files(run.path)
    with dashboard_thread([run.path]) as server:
        assert server.server_address[0] == "127.0.0.1" and server.url.startswith(
            "http://127.0.0.1:")
        status, headers, body = _request(server, "/")
        assert status == 200 and b'<script type="application/json" id="evonas-config">' in body
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        for path in ("/config.yaml", "/history.sqlite", "/static/../config.yaml",
                     "/static/%2e%2e/config.yaml", "/api/runs/0/../../run.json",
                     "//etc/passwd", "/static/app.js/../../history.sqlite", "/api/runs/1",
                     "/api/runs/0/evaluations/999", f"/{run.path}/config.yaml"):
            status, _, body = _request(server, path)
            assert status == 404, path
            assert b"encoding" not in body and b"SQLite" not in body and b"fingerprint" not in body
        assert _request(server, "/", host="attacker.example")[0] == 403  # a rebound DNS name
        assert _request(server, "/", host=f"localhost:{server.port}")[0] == 200
        for method in ("POST", "PUT", "DELETE"):
            assert _request(server, "/api/runs/0", method=method)[0] == 501
        status, headers, body = _request(server, "/api/runs/0?since=0")
        assert status == 200 and headers["Content-Type"].startswith("application/json")
        assert b"<" not in body and b">" not in body  # every string escaped for any context
        data = json.loads(body)
        assert next(r for r in data["rows"] if r["failed"])["reason"] == HOSTILE
        status, _, body = _request(server, "/api/runs/0/evaluations/0")
        assert status == 200 and HOSTILE in json.loads(body)["metrics"]
        assert _request(server, "/api/runs/0/importance")[0] == 200
    assert _files(run.path) == before  # the history and its log included: read-only
    run.close()
