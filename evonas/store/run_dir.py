"""The run directory: one experiment's config, history, checkpoints, best model and report.

The layout is :mod:`evonas.store.layout`.

Order of writes per generation (:meth:`RunDir.commit_generation`): the history commit first, then
the checkpoint. A process killed between the two leaves a generation in the history that no
checkpoint covers; :meth:`RunDir.resume` drops it and the run computes it again, identically,
from the checkpointed state and RNG key. So a run killed at any instant and resumed writes
exactly the rows it would have written uninterrupted.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from evonas.store.atomic import atomic_write_text, check_not_link, read_small_text, safe_dir
from evonas.store.checkpoints import Checkpoint, Checkpoints, NoCheckpointError
from evonas.store.configfile import load_yaml
from evonas.store.history import History
from evonas.store.layout import (
    CHECKPOINTS,
    CONFIG,
    DATASET_INFO,
    HISTORY,
    LOCK,
    METRICS,
    RUN_INFO,
    SUBDIRS,
    RunPaths,
)
from evonas.version import __version__

try:
    import fcntl
except ImportError:  # not POSIX: no OS-level lock
    fcntl = None


class RunDirError(ValueError):
    """A run directory can't be used: another experiment's, not a run, unreadable or unwritable."""


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """A hex SHA-256 of ``config`` (the settings that determine the search) as canonical JSON.

    Key order does not matter; every value does.
    """
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class RunLock:
    """The OS-level lock that makes one process the owner of a run directory.

    ``flock`` on ``<run-dir>/.evonas.lock``: the kernel releases it when its process ends, however
    it ends (SIGKILL included), so a crashed run never leaves a stale lock. The file holds the
    owner's PID, for the message the second process gets.

    Raises:
        RunDirError: another process holds the lock (naming the directory and its PID).
    """

    def __init__(self, directory: Path):
        path = Path(directory) / LOCK
        check_not_link(path)
        self.path = path
        self.fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
                                      | getattr(os, "O_NONBLOCK", 0), 0o644)
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            self.fd = None
            raise RunDirError(f"{path} is not a regular file; the run directory's lock must be "
                              "one: remove it (no evonas process makes anything else there)")
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(self.fd, 64, 0).decode("utf-8", "replace").strip() or "unknown"
            os.close(self.fd)
            self.fd = None
            raise RunDirError(
                f"the run directory {directory} is in use by another evonas process (PID "
                f"{owner}); wait for it to finish or stop it, then try again"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    @staticmethod
    def check_free(directory: Path) -> None:
        """Raises the owner's :class:`RunDirError` when another process holds the lock;
        changes nothing (a probe, for commands that check more before they take the lock)."""
        path = Path(directory) / LOCK
        if fcntl is None or not path.is_file() or path.is_symlink():
            return
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = os.pread(fd, 64, 0).decode("utf-8", "replace").strip() or "unknown"
                raise RunDirError(
                    f"the run directory {directory} is in use by another evonas process (PID "
                    f"{owner}); wait for it to finish or stop it, then try again"
                ) from None
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def held_here(self) -> bool:
        """Whether the lock file at the directory's path is still the one this process holds:
        False once the directory was moved (or replaced) while it was owned."""
        if self.fd is None:
            return False
        try:
            there = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        held = os.fstat(self.fd)
        return (there.st_dev, there.st_ino) == (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Lets another process own the directory."""
        if self.fd is not None:
            if fcntl is not None:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_FD_PATHS = os.path.isdir("/proc/self/fd")  # Linux: /proc/self/fd/N is the open directory


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of the directory at ``path`` (None: nothing there)."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _unwritable(path: Path, error: OSError) -> RunDirError:
    reason = error.strerror or str(error)
    return RunDirError(f"can't write the run directory {path}: {reason}; pick a writable --run-dir")


def _check_writable(path: Path) -> None:
    """Raises RunDirError unless a file can be created in ``path`` (permissions and disk)."""
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise _unwritable(path, e) from None


def _is_unfinished_create(path: Path) -> bool:
    """True if ``path`` holds only what a create() killed before writing run.json leaves."""
    for entry in path.iterdir():
        if entry.name in SUBDIRS and entry.is_dir() and not any(entry.iterdir()):
            continue
        if entry.name in (CONFIG, LOCK) or entry.name.startswith((f".{CONFIG}.", f".{RUN_INFO}.")):
            continue
        return False
    return True


def _plain_config(config: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return json.loads(json.dumps(dict(config)))
    except (TypeError, ValueError) as e:
        raise RunDirError(
            f"the config can't be written as YAML: {e}; resolve it to numbers, strings, "
            "lists and dicts first"
        ) from None


class RunDir:
    """An existing run directory, opened to resume it or to read it.

    Use :meth:`create` to start a run (or reopen one of the same experiment).

    A writable RunDir owns the directory (:class:`RunLock`) until :meth:`close`; a read-only
    one takes no lock.

    Args:
        path: the run directory.
        readonly: only read (a report on a live run): no write check, no lock, history opened
            read-only.
        keep: how many checkpoints to keep.

    Raises:
        RunDirError: ``path`` is not an evonas run directory, (unless ``readonly``) can't be
            written, or another process owns it.
    """

    def __init__(self, path: str | os.PathLike, *, readonly: bool = False, keep: int = 3,
                 _lock: RunLock | None = None):
        self.path = Path(path)
        self.readonly = readonly
        self._lock = _lock
        self.created = False  # set by create() when this process wrote run.json
        self._created_dir = False
        info_path = self.path / RUN_INFO
        if not info_path.is_file():
            if not self.path.exists():
                raise RunDirError(f"no run directory at {self.path}; give the directory a run "
                                  "wrote (evonas run prints it)")
            raise RunDirError(
                f"{self.path} is not an evonas run directory (it has no {RUN_INFO}); give the "
                "directory a run wrote (evonas run prints it)"
            )
        try:
            self.info: dict[str, Any] = json.loads(read_small_text(info_path, 1 << 16))
            self.fingerprint: str = self.info["fingerprint"]
            # Run directories from before the version was recorded hold version 1.
            self.fingerprint_version: int = int(self.info.get("fingerprint_version", 1))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise RunDirError(
                f"can't read {info_path} ({e}); is this an evonas run directory?"
            ) from None
        if not readonly:
            _check_writable(self.path)
            if self._lock is None:
                self._lock = RunLock(self.path)
            try:
                for name in SUBDIRS:
                    safe_dir(self.path / name, self.path)
            except OSError as e:
                self._lock.release()
                raise _unwritable(self.path, e) from None
            except ValueError:
                self._lock.release()
                raise
        self.keep = keep
        self._history: History | None = None
        self._checkpoints: Checkpoints | None = None
        self._identity = _identity(self.path)
        # This experiment's fingerprints (run.json's; every version's once opened by create):
        # a checkpoint holding another was written by another experiment.
        self.fingerprints: frozenset[str] = frozenset({self.fingerprint})
        # Held open while the run writes: paths through it follow the directory if it is moved.
        self._dir_fd = None if readonly else os.open(self.path, os.O_RDONLY | _DIRECTORY)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        config: Mapping[str, Any],
        fingerprint: str,
        *,
        keep: int = 3,
        fingerprint_version: int = 1,
        legacy: Mapping[int, str] | None = None,
    ) -> RunDir:
        """Creates a run directory, or opens the existing run of the same experiment (to resume).

        Writes ``config.yaml`` and then ``run.json`` atomically; an existing run is left as it
        is (its config is not rewritten).

        Args:
            path: the run directory: new, empty, or a run with the same ``fingerprint``.
            config: the fully resolved config, every default written out (plain data).
            fingerprint: identifies the experiment, e.g. :func:`config_fingerprint` of the
                settings that determine the search.
            keep: how many checkpoints to keep.
            fingerprint_version: the version of ``fingerprint``, recorded in ``run.json``.
            legacy: the same experiment's fingerprint under older versions, by version: an
                existing run that recorded one of them is the same experiment.

        Raises:
            RunDirError: ``path`` holds another experiment, holds files that are not a run, or
                can't be written. Nothing in it is changed.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunDirError(f"the run directory {path} is a file; pick another --run-dir")
        expected = {fingerprint_version: fingerprint, **(legacy or {})}
        if (path / RUN_INFO).is_file():
            return cls._existing(path, expected, keep)
        if path.is_dir() and not _is_unfinished_create(path):
            raise RunDirError(
                f"{path} is not empty and not an evonas run directory; pick a new or empty "
                "--run-dir"
            )
        config = _plain_config(config)
        now = datetime.datetime.now(datetime.timezone.utc)
        info = {
            "evonas_version": __version__,
            "fingerprint": fingerprint,
            "fingerprint_version": fingerprint_version,
            "created_at": now.isoformat(timespec="seconds"),
        }
        lock = None
        created_dir = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
            _check_writable(path)
            lock = RunLock(path)
            if (path / RUN_INFO).is_file():  # another process finished creating it meanwhile
                return cls._existing(path, expected, keep, lock)
            for name in SUBDIRS:
                safe_dir(path / name, path)
            atomic_write_text(path / CONFIG, yaml.safe_dump(config, sort_keys=False), path)
            # run.json last: its presence means the run directory is complete.
            atomic_write_text(path / RUN_INFO, json.dumps(info, indent=2) + "\n", path)
        except OSError as e:
            if lock is not None:
                lock.release()
            raise _unwritable(path, e) from None
        except ValueError:
            if lock is not None:
                lock.release()
            raise
        run = cls(path, keep=keep, _lock=lock)
        run.created, run._created_dir = True, created_dir
        return run

    @classmethod
    def _existing(cls, path: Path, expected: Mapping[int, str], keep: int,
                  lock: RunLock | None = None) -> RunDir:
        """The existing run at ``path``, owned, if it holds the experiment whose fingerprint
        per version is ``expected`` (checked before the lock is taken: another experiment's
        directory is not touched)."""
        existing = cls(path, readonly=True)
        held = existing.fingerprint
        fingerprint = expected.get(existing.fingerprint_version, "?" * 16)
        if held != fingerprint:
            if lock is not None:
                lock.release()
            raise RunDirError(
                f"{path} holds another experiment (fingerprint {held[:12]}, this "
                f"one {fingerprint[:12]}); pick another --run-dir, or resume that run"
            )
        run = cls(path, keep=keep, _lock=lock)
        run.fingerprints = frozenset({run.fingerprint, *expected.values()})
        return run

    # -- layout ----------------------------------------------------------------------------------

    @property
    def paths(self) -> RunPaths:
        """Every path of the run directory (:class:`~evonas.store.layout.RunPaths`)."""
        return RunPaths(self.path)

    @property
    def config_path(self) -> Path:
        return self.paths.config

    @property
    def checkpoints_dir(self) -> Path:
        return self.paths.checkpoints

    @property
    def best_dir(self) -> Path:
        return self.paths.best

    @property
    def report_dir(self) -> Path:
        return self.paths.report

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config, read from ``config.yaml``."""
        try:
            text = read_small_text(self.config_path, 1 << 20)
            return load_yaml(text, os.fspath(self.config_path)) or {}
        except OSError as e:
            raise RunDirError(f"can't read {self.config_path}: {e.strerror or e}") from None
        except ValueError as e:
            raise RunDirError(str(e)) from None

    @property
    def history(self) -> History:
        """The history (opened on first use; read-only if the run directory is)."""
        if self._history is None:
            for suffix in ("", "-wal", "-shm", "-journal"):  # sqlite follows links: refuse them
                check_not_link(self.path / f"{HISTORY}{suffix}")
            try:
                self._history = History(self.path / HISTORY, readonly=self.readonly)
            except ValueError as e:
                raise RunDirError(str(e)) from None
        return self._history

    @property
    def write_root(self) -> Path:
        """Where this process writes the run's files: a path to the directory it opened, which
        stays that directory if it is moved or replaced meanwhile (``/proc/self/fd/N`` on
        Linux; :attr:`path` elsewhere). A write under way when the directory is moved so
        lands in the run's own directory, never in whatever is at the old path; the next
        :meth:`ensure_here` then stops the run."""
        if self._dir_fd is not None and _FD_PATHS:
            return Path(f"/proc/self/fd/{self._dir_fd}")
        return self.path

    @property
    def checkpoints(self) -> Checkpoints:
        """The checkpoints (opened on first use)."""
        if self._checkpoints is None:
            root = self.write_root
            if not self.readonly:
                safe_dir(root / CHECKPOINTS, root)
            self._checkpoints = Checkpoints(root / CHECKPOINTS, keep=self.keep,
                                            shown=self.checkpoints_dir)
        return self._checkpoints

    def discard(self) -> None:
        """Removes what :meth:`create` made (a run that failed before committing anything), so
        a corrected command can use the directory: evonas's own files and directories only,
        never following a link; anything else in it stays, and so does the directory then."""
        self.close()
        own = {CONFIG, RUN_INFO, LOCK, METRICS, DATASET_INFO} | {
            f"{HISTORY}{s}" for s in ("", "-wal", "-shm", "-journal")}
        left = False
        for entry in list(self.path.iterdir()):
            if entry.is_symlink() or (entry.name not in own and entry.name not in SUBDIRS):
                left = True
            elif entry.name in SUBDIRS and entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        if self._created_dir and not left:
            self.path.rmdir()

    def close(self) -> None:
        """Closes the history and the checkpoint manager, and gives up the directory's lock."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._history is not None:
            self._history.close()
            self._history = None
        if self._checkpoints is not None:
            self._checkpoints.close()
            self._checkpoints = None
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the host loop's two calls ---------------------------------------------------------------

    def commit_generation(
        self,
        generation: int,
        rows: Iterable[Mapping[str, Any]],
        summary: Mapping[str, Any],
        state: Any,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Writes a finished generation: its history rows (one transaction), then a checkpoint.

        Args:
            generation: the generation just finished.
            rows, summary: as for :meth:`History.append_generation`.
            state: the search state after the generation (strategy state, RNG key, ...).
            extra: JSON bookkeeping for the checkpoint; ``history_rows`` (the history's row
                count, which :meth:`resume` checks) is set here.

        Raises:
            RunDirError: the run directory can't be written; what was committed stays valid.
        """
        self.ensure_here()
        self.history.append_generation(generation, rows, summary)
        extra = {**(extra or {}), "history_rows": self.history.count(),
                 "fingerprint": self.fingerprint}
        self.ensure_here()
        try:
            self.checkpoints.save(generation, state, extra)
        except Exception as e:  # orbax and tensorstore raise many types for a failed write
            self.ensure_here()  # moved meanwhile: say so, not what the write met
            if isinstance(e, OSError):
                raise _unwritable(self.path, e) from None
            raise

    def ensure_here(self) -> None:
        """Checks that the directory this process owns is still at its path before a write.

        A run directory moved (or replaced by another) while its run is alive would otherwise
        get its history in one place and its checkpoints, models and report in another: the
        run stops instead, and nothing more is written.

        Raises:
            RunDirError: the directory at the path is not the one this process locked.
        """
        if self._lock is not None and not self._lock.held_here():
            raise self.moved_error()

    def is_here(self) -> bool:
        """Whether the directory at :attr:`path` is still the one this object opened (also
        after its lock was released)."""
        return _identity(self.path) == self._identity

    def moved_error(self) -> RunDirError:
        """The one line for a run whose directory was moved or replaced while it ran."""
        return RunDirError(
            f"the run directory {self.path} was moved or replaced while this run wrote it; "
            "nothing more is written there: run `evonas resume` on the directory where it is "
            "now")

    def resume(self, template: Any, *, missing_ok: bool = False) -> Checkpoint | None:
        """Restores the newest valid checkpoint and drops history rows that it doesn't cover.

        Only rows that the run computes again, identically, are ever dropped: those of
        generations after the restored checkpoint.

        Args:
            template: the state's structure (see :meth:`Checkpoints.restore`).
            missing_ok: when no checkpoint was ever completed and the history holds at most the
                first generation (the run died in it), drop that generation and return None
                instead of raising.

        Returns:
            The checkpoint; the next generation to run is ``checkpoint.generation + 1``.

        Raises:
            NoCheckpointError: no readable checkpoint (and not ``missing_ok``).
            RunDirError: the history has rows no readable checkpoint covers (damaged or removed
                checkpoints), or fewer rows than the checkpoint covers (changed outside evonas);
                nothing is deleted either way.
        """
        try:
            checkpoint = self.checkpoints.latest_valid(template)
        except NoCheckpointError as err:
            if not missing_ok:
                raise
            done = [g["generation"] for g in self.history.generations()]
            completed = self.checkpoints.completed()
            if not done or (set(done) <= {0} and not completed):
                self.history.truncate_after(-1)  # the first generation is computed again
                return None
            damaged = ", ".join(str(g) for g in completed) or "none left"
            raise RunDirError(
                f"{self.path}: its history holds {self.history.count()} evaluations of "
                f"{len(done)} generations, but no checkpoint can be restored ({err}; complete "
                f"checkpoints: {damaged}), and the search can't continue from the history "
                "alone. Nothing was changed: the history still serves `evonas report` and "
                "`evonas front`; to search again, start a new run in another directory"
            ) from None
        held = checkpoint.extra.get("fingerprint")
        if held is not None and held not in self.fingerprints:
            raise RunDirError(
                f"checkpoint {checkpoint.generation} in {self.checkpoints_dir} belongs to another "
                f"experiment (fingerprint {str(held)[:12]}, this run's {self.fingerprint[:12]}): "
                "it was written there by another run; nothing was changed")
        expected = checkpoint.extra.get("history_rows")
        have = self.history.count(through=checkpoint.generation)
        if expected is not None and have != expected:
            raise RunDirError(
                f"the history {self.path / HISTORY} has {have} rows up to generation "
                f"{checkpoint.generation} but its checkpoint expects {expected}; it was changed "
                f"outside evonas (a lost write-ahead log, {HISTORY}-wal, loses the generations "
                "it held): nothing was changed; restore it, or start a new run"
            )
        self.history.truncate_after(checkpoint.generation)
        return checkpoint
