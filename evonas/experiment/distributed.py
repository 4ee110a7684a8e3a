"""Runs over many processes on JAX's multi-controller runtime (``jax.distributed``).

One evonas experiment spans several processes (hosts, or several processes on one host):
process 0 (the *leader*) runs the search as a single-process run does, owns the run directory
and alone reads and writes it; the others (*followers*) hold no search state. Every population
the leader trains goes through the :class:`Session`'s trainer (:meth:`Session.trainer`), which
first publishes the call (key, genomes, training config, starting parameters, halving schedule)
through the coordinator's key-value store and then runs :func:`evonas.train.train_population`
with the session; each follower runs the same call, and the population axis is sharded over the
global mesh of every process's devices. The session is passed explicitly: to the experiment,
which hands its trainer to the training evaluator, and to the trainer. Metrics come
back to every process by an all-gather. Nothing a follower computes depends on its own clock:
the step times that the ``auto`` plan learns from are the leader's, broadcast (:meth:`Session.
agree`), so every process makes the same plan and calls the same programs in the same order.

Followers being stateless is what makes a multi-process run resumable like any other: the
checkpoint, the history and the de-duplication cache live in the leader's run directory, and
``evonas resume`` on the leader continues it while the followers start fresh.

Liveness: every process beats in the key-value store; a watchdog thread that sees a peer miss
beats for ``peer_timeout`` seconds prints one line and ends its process, well before JAX's own
heartbeat would abort it with a stack trace. The coordinator lives in process 0, so when process 0
itself dies JAX's client in the others sees its connection close and aborts them at once, with
JAX's message (``Terminating process because the JAX distributed service detected fatal
errors``), before a watchdog can speak; the client's hook for that case can't be set from
Python. A run directory's
committed generations are never lost: the leader commits each generation before the next starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from evonas.train import TrainConfig, train_population
from evonas.train.halving import Halving

_PREFIX = "evonas"
_EXIT_PEER = 1  # status of a process that ends because a peer is gone


def parse_coordinator(text: str) -> tuple[str, int]:
    """``"HOST:PORT"`` -> ``(host, port)``.

    Raises:
        ValueError: one line naming the value and the form allowed.
    """
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--coordinator must look like HOST:PORT with a port in 1..65535 (e.g. "
                         f"10.0.0.1:1234); got {text!r}")
    return host.strip("[]"), int(port)


def check_settings(coordinator: str | None, num_processes: int | None,
                   process_id: int | None, detect: bool = False,
                   timeout: float = 60.0, peer_timeout: float = 30.0) -> None:
    """Checks the command line's distributed settings before anything starts.

    Raises:
        ValueError: one line naming the setting, its value and what is allowed.
    """
    explicit = [coordinator is not None, num_processes is not None, process_id is not None]
    if any(explicit) and not all(explicit):
        missing = [n for n, given in zip(("--coordinator", "--num-processes", "--process-id"),
                                         explicit) if not given]
        raise ValueError(f"a multi-process run needs --coordinator, --num-processes and "
                         f"--process-id together (or --distributed alone, where JAX detects "
                         f"the cluster); missing {', '.join(missing)}")
    if detect and any(explicit):
        raise ValueError("--distributed detects the cluster itself (SLURM, Cloud TPU, MPI): "
                         "give it alone, or give --coordinator, --num-processes and "
                         "--process-id without it")
    if all(explicit):
        parse_coordinator(coordinator)
        if not isinstance(num_processes, int) or num_processes < 1:
            raise ValueError(f"--num-processes must be an integer >= 1; got {num_processes!r}")
        if not isinstance(process_id, int) or not 0 <= process_id < num_processes:
            raise ValueError(f"--process-id must be in 0..{num_processes - 1} (--num-processes "
                             f"{num_processes}); got {process_id!r}")
    for name, value in (("--coordinator-timeout", timeout), ("--peer-timeout", peer_timeout)):
        if not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number of seconds; got {value!r}")


def _wait_for(host: str, port: int, timeout: float) -> None:
    """Waits until something listens at ``host:port`` (process 0's coordinator)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise ValueError(
                    f"can't reach the coordinator {host}:{port} within {timeout:g} s "
                    "(--coordinator-timeout): start process 0 there first, or check the "
                    "address and that the port is open") from None
            time.sleep(0.25)


def _check_free(host: str, port: int) -> None:
    """Process 0 binds the coordinator's port: say so at once when it is taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            raise ValueError(f"the coordinator's port {port} is in use on this host "
                             f"(--coordinator {host}:{port}): choose another port") from None


def _native_stdout_to_stderr() -> None:
    """Gloo prints its connection notes on the process's stdout (file descriptor 1): point that
    descriptor at stderr and keep Python's ``sys.stdout`` on the original one, so what evonas
    prints (a JSON line, the run's summary) stays alone on stdout."""
    try:
        sys.stdout.flush()
        original = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = os.fdopen(original, "w", buffering=1, encoding=sys.stdout.encoding,
                               errors=sys.stdout.errors)
    except (OSError, AttributeError, ValueError):  # no real descriptors (an embedding host)
        pass


def _die(message: str) -> None:
    """One line on stderr, then the process ends at once (a thread may sit in a collective)."""
    try:
        sys.stderr.write(f"evonas: error: {message}\n")
        sys.stderr.flush()
        sys.stdout.flush()
    finally:
        os._exit(_EXIT_PEER)


def _try_get(client: Any, key: str) -> str | None:
    """A key's value, or None while nobody set it."""
    try:
        return client.key_value_try_get(key)
    except Exception as err:
        if "NOT_FOUND" in str(err) or "not found" in str(err).lower():
            return None
        raise


class _Watchdog(threading.Thread):
    """Beats for this process and watches the others' beats in the key-value store."""

    def __init__(self, session: Session):
        super().__init__(name="evonas-watchdog", daemon=True)
        self.session = session
        self.interval = min(1.0, session.peer_timeout / 5)
        self.armed = threading.Event()
        self.armed.set()

    def run(self) -> None:
        s = self.session
        client = s.client
        beat, seen = 0, {}
        now = time.monotonic()
        last = {p: now for p in range(s.num_processes) if p != s.process_id}
        while self.armed.is_set():
            try:
                beat += 1
                client.key_value_set(f"{_PREFIX}/beat/{s.process_id}", str(beat),
                                     allow_overwrite=True)
                now = time.monotonic()
                for p in last:
                    value = _try_get(client, f"{_PREFIX}/beat/{p}")
                    if value != seen.get(p):
                        seen[p], last[p] = value, now
            except Exception as err:  # the coordinator (process 0) is gone
                if not self.armed.is_set():
                    return
                if s.process_id == 0:
                    _die(f"the coordinator's key-value store failed ({type(err).__name__}): the "
                         f"run stops{s.context}")
                _die(f"process 0 (the coordinator at {s.coordinator}) stopped answering: the run "
                     f"stops{s.context}")
            late = [p for p, t in last.items() if now - t > s.peer_timeout]
            if late and self.armed.is_set():
                _die(f"process {late[0]} of {s.num_processes} stopped answering (no heartbeat "
                     f"for {s.peer_timeout:g} s, --peer-timeout): the run stops{s.context}")
            time.sleep(self.interval)


@dataclasses.dataclass
class Call:
    """One population the leader trains, as the followers receive it."""

    key: jax.Array
    genomes: np.ndarray
    config: TrainConfig
    start: list[np.ndarray] | None
    keep_params: bool
    halving: Halving | None = None


def _encode(kind: str, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, __header__=np.asarray(json.dumps({"kind": kind, **header})), **arrays)
    return buffer.getvalue()


def _decode(data: bytes) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        header = json.loads(str(npz["__header__"]))
        arrays = {k: npz[k] for k in npz.files if k != "__header__"}
    return header.pop("kind"), header, arrays


class Session:
    """This process's part in a multi-process run (see the module docstring).

    Attributes:
        process_id, num_processes: this process and how many there are.
        coordinator: ``HOST:PORT`` of process 0's coordination service.
        peer_timeout: seconds without a peer's heartbeat after which the run stops.
        serving: while True the leader publishes every ``train_population`` call and the
            population is sharded over every process's devices.
        context: appended to the one-line error a lost peer causes (where to resume).
    """

    def __init__(self, process_id: int, num_processes: int, coordinator: str,
                 peer_timeout: float):
        from jax._src import distributed as _distributed  # the coordinator's key-value store

        self.client = _distributed.global_state.client
        self.process_id = process_id
        self.num_processes = num_processes
        self.coordinator = coordinator
        self.peer_timeout = float(peer_timeout)
        self.serving = True
        self.context = ""
        self._sent = 0
        self._received = 0
        self._watchdog = _Watchdog(self)
        self._watchdog.start()

    @property
    def leader(self) -> bool:
        return self.process_id == 0

    @property
    def devices(self) -> list[Any]:
        """Every process's devices, in JAX's global order: the population's mesh."""
        return list(jax.devices())

    # -- leader -> followers ----------------------------------------------------------------

    def _publish(self, data: bytes) -> None:
        self.client.key_value_set_bytes(f"{_PREFIX}/msg/{self._sent}", data)
        self._sent += 1

    def send_experiment(self, config: dict[str, Any]) -> None:
        """The experiment (its resolved config) the followers build their components from."""
        self._publish(_encode("experiment", {"config": config}, {}))

    def publish_train(self, key: jax.Array, genomes: np.ndarray, config: TrainConfig,
                      start: Any, keep_params: bool, halving: Halving | None = None) -> None:
        """Announces a ``train_population`` call; the followers run the same one."""
        arrays = {"key": np.asarray(jax.random.key_data(key)),
                  "genomes": np.asarray(genomes, np.int32)}
        leaves = [] if start is None else jax.tree.leaves(start)
        for i, leaf in enumerate(leaves):
            arrays[f"start_{i}"] = np.asarray(leaf)
        schedule = None if halving is None else {"rungs": list(halving.rungs),
                                                 "eta": halving.eta}
        self._publish(_encode("train", {"config": dataclasses.asdict(config),
                                        "start": None if start is None else len(leaves),
                                        "keep_params": bool(keep_params),
                                        "halving": schedule}, arrays))

    def trainer(self, key: jax.Array, encoding: Any, genomes: Any, dataset: Any,
                config: TrainConfig, **options: Any) -> Any:
        """``train_population`` for the leader: publishes the call, then runs it with the
        session (the followers run the same call)."""
        if self.serving:
            self.publish_train(key, genomes, config, options.get("start"),
                               options.get("keep_params", False), options.get("halving"))
            options["session"] = self
        return train_population(key, encoding, genomes, dataset, config, **options)

    def receive(self) -> tuple[str, dict[str, Any], Any]:
        """A follower's next message: ``("experiment", header, None)``, ``("train", header,
        Call)`` or ``("stop", header, None)``; waits as long as the leader is alive."""
        key = f"{_PREFIX}/msg/{self._received}"
        while True:
            try:
                data = self.client.blocking_key_value_get_bytes(key, 1000)
                break
            except Exception as err:
                if "DEADLINE_EXCEEDED" not in str(err) and "deadline" not in str(err).lower():
                    _die(f"process 0 (the coordinator at {self.coordinator}) stopped answering: "
                         f"the run stops{self.context}")
        self._received += 1
        kind, header, arrays = _decode(data)
        if kind != "train":
            return kind, header, None
        config = TrainConfig(**header["config"])
        start = (None if header["start"] is None
                 else [arrays[f"start_{i}"] for i in range(header["start"])])
        schedule = header.get("halving")
        halving = None if schedule is None else Halving(tuple(schedule["rungs"]),
                                                        schedule["eta"])
        call = Call(jax.random.wrap_key_data(arrays["key"]), arrays["genomes"], config, start,
                    header["keep_params"], halving)
        return kind, header, call

    def _await_acks(self) -> None:
        """Waits until every follower has the stop message: leaving ``jax.distributed`` is a
        barrier, and a follower that died would make JAX abort this process there."""
        waiting = set(range(1, self.num_processes))
        deadline = time.monotonic() + 2 * self.peer_timeout
        while waiting:
            waiting = {p for p in waiting if _try_get(self.client, f"{_PREFIX}/ack/{p}") is None}
            if waiting and time.monotonic() > deadline:
                self.lost()
            time.sleep(0.05)

    # -- every process ----------------------------------------------------------------------

    def lost(self, err: BaseException | None = None) -> None:
        """Something failed while the processes work together (a collective, the key-value
        store): most likely a peer is gone. Waits for the watchdog to tell which (one line,
        then the process ends), or ends the process with ``err``'s first line."""
        deadline = time.monotonic() + 2 * self.peer_timeout + 2
        while time.monotonic() < deadline:
            time.sleep(0.1)
        first = str(err).strip().splitlines()[0] if err is not None and str(err).strip() else (
            "a peer stopped answering")
        _die(f"the processes lost each other ({first[:200]}): the run stops{self.context}")

    def agree(self, value: float) -> float:
        """The leader's ``value`` on every process (a measured time that steers planning)."""
        if not self.serving:
            return value
        from jax.experimental import multihost_utils

        return float(multihost_utils.broadcast_one_to_all(np.float64(value)))

    def close(self, status: str = "done") -> None:
        """Ends the multi-process part: the leader tells the followers to stop (``status``:
        ``"done"`` or the error that stopped it), then every process leaves ``jax.distributed``.
        The leader goes on alone (final stage, report) on its own first device."""
        if not self.serving:
            return
        self.serving = False
        if self.leader:
            try:
                self._publish(_encode("stop", {"status": status}, {}))
            except Exception:
                self.lost()
            self._await_acks()
        else:
            try:
                self.client.key_value_set(f"{_PREFIX}/ack/{self.process_id}", "1")
            except Exception:
                self.lost()
        self._watchdog.armed.clear()
        try:
            jax.distributed.shutdown()
        except Exception:
            pass
        if self.leader:
            alone()


def alone() -> None:
    """Makes this process a single-process JAX program again, after the multi-process part.

    Leaving ``jax.distributed`` keeps the backend it made, whose devices and process count are
    every process's, and libraries ask that backend how many processes take part (orbax then
    waits for the others through a coordinator that is gone, and fails). The leader's final
    stage is its own: the client is dropped (whatever its shutdown raised) and the backends are
    cleared, so the next computation starts a backend of this process's devices alone. Arrays
    of the old backend are not used after this.
    """
    from jax._src import distributed as _distributed
    from jax.extend import backend

    state = _distributed.global_state
    state.client = state.service = state.preemption_sync_manager = None
    backend.clear_backends()


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, detect: bool = False,
               timeout: float = 60.0, peer_timeout: float = 30.0) -> Session:
    """Joins this process to a multi-process run (``jax.distributed.initialize``).

    Args:
        coordinator: ``HOST:PORT`` of process 0 (it serves the coordinator there).
        num_processes: how many processes take part.
        process_id: this process, ``0 .. num_processes - 1``.
        detect: let JAX detect the cluster (SLURM, Cloud TPU, Open MPI) instead.
        timeout: seconds to reach the coordinator and for every process to join.
        peer_timeout: seconds without a peer's heartbeat after which the run stops.

    Raises:
        ValueError: bad settings, an unreachable coordinator, a port in use, or processes that
            did not all join within ``timeout`` (one line each; nothing is created).
    """
    check_settings(coordinator, num_processes, process_id, detect, timeout, peer_timeout)
    if jax.distributed.is_initialized():
        raise ValueError("this process already takes part in a multi-process run")
    if jax.config.jax_platforms in (None, "", "cpu") or jax.config.jax_platforms.startswith(
            "cpu"):
        # CPU devices of different processes talk over gloo (GPUs and TPUs bring their own).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        _native_stdout_to_stderr()
    if coordinator is not None:
        host, port = parse_coordinator(coordinator)
        if process_id == 0:
            _check_free(host, port)
        else:
            _wait_for(host, port, timeout)
    joined = threading.Event()

    def too_late() -> None:  # JAX would abort with a stack trace: say it in one line first
        if not joined.is_set():
            where = coordinator or "the detected coordinator"
            _die(f"not every process joined the run at {where} within {timeout:g} s "
                 f"(--coordinator-timeout): start all {num_processes or 'of the'} processes "
                 "with the same --coordinator and --num-processes, each with its own "
                 "--process-id")

    timer = threading.Timer(timeout, too_late)
    timer.daemon = True
    timer.start()
    try:
        jax.distributed.initialize(
            coordinator, num_processes, process_id,
            initialization_timeout=int(timeout) + 30,
            heartbeat_timeout_seconds=int(2 * peer_timeout) + 10)
    except (ValueError, RuntimeError) as err:
        joined.set()
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"can't start the multi-process run: {first}") from None
    finally:
        joined.set()
        timer.cancel()
    return Session(jax.process_index(), jax.process_count(), coordinator or "(detected)",
                   peer_timeout)


def population_note(size: int, devices: int) -> str | None:
    """What padding a population of ``size`` over ``devices`` devices costs, or None when it
    divides: the trainer pads each chunk to a multiple of the devices with copies whose results
    are discarded."""
    if size % devices == 0:
        return None
    padded = -(-size // devices) * devices
    lower = size // devices * devices
    sizes = ", ".join(str(n) for n in (lower, padded) if n > 0)
    return (f"a population of {size} does not divide over {devices} devices: each call is "
            f"padded to {padded} ({padded - size} discarded copies, "
            f"{(padded - size) / padded:.0%} of the compute); sizes without padding: {sizes}")


def follow(session: Session, train: Callable[[Call], Any],
           build: Callable[[dict[str, Any]], Any] | None = None) -> str:
    """A follower's loop: builds the experiment from the leader's config (``build``), then
    runs every published training call until the leader says stop. Returns the leader's
    status (``"done"`` or its error)."""
    while True:
        kind, header, call = session.receive()
        if kind == "experiment":
            if build is not None:
                train = build(header["config"])
        elif kind == "train":
            try:
                train(call)
            except Exception as err:  # a collective failed: a peer is gone
                session.lost(err)
        else:
            session.close()
            return str(header.get("status", "done"))


def join(coordinator: str | None = None, num_processes: int | None = None,
         process_id: int | None = None, *, detect: bool = False, timeout: float = 60.0,
         peer_timeout: float = 30.0) -> Session | None:
    """This process's session when the settings ask for a multi-process run, else None (the
    settings checked either way).

    Raises:
        ValueError: as :func:`initialize`.
    """
    explicit = (coordinator, num_processes, process_id)
    check_settings(*explicit, detect, timeout, peer_timeout)
    if not detect and all(v is None for v in explicit):
        return None
    return initialize(*explicit, detect=detect, timeout=timeout, peer_timeout=peer_timeout)


@contextlib.contextmanager
def leading(session: Session | None) -> Any:
    """Process 0's part of a command: whatever stops it before its search ends stops the others
    too, with its first line; when it ends, the others are let go."""
    try:
        yield
    except BaseException as err:
        if session is not None:
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            session.close(f"process 0 stopped: {why}")
        raise
    finally:
        if session is not None:
            session.close("done")


def follow_leader(session: Session, build_trainer: Callable[[dict[str, Any]], Any]) -> None:
    """A follower's part of a multi-process run: builds the experiment process 0 sends
    (``build_trainer(config) -> train(call)``) and trains every population it publishes, until
    its search ends.

    Raises:
        RuntimeError: process 0 stopped with an error (its first line).
    """
    status = follow(session, lambda call: None, build_trainer)
    if status != "done":
        raise RuntimeError(f"process 0 stopped the run: {status}")
