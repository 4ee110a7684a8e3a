"""Small files: atomic writes (a reader sees the old file or the new one, never half of either)
that never follow a link, appends that a crash can only tear at the end, tolerant JSON reads."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any


def fsync_dir(directory: str | os.PathLike) -> None:
    """Flushes a directory entry (a rename or a new file in it) to disk.

    Best effort: some file systems refuse to open directories; losing the flush there only weakens
    durability against power loss, never against a killed process.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class UnsafePathError(ValueError):
    """A run directory holds a symbolic link (or a file) where evonas writes: evonas never
    writes through a link, so whoever made the directory can't redirect a write elsewhere."""


_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _refuse(path: Path, what: str) -> UnsafePathError:
    return UnsafePathError(f"{path} is {what}; evonas writes into a run directory only through "
                           "real directories and files, never links: remove it (or use another "
                           "run directory)")


def _open_dir(root: Path, parts: tuple[str, ...], create: bool) -> int:
    """A descriptor of ``root/parts...``, each part opened without following a link (created
    when ``create``)."""
    fd = os.open(root, _DIR_FLAGS)
    where = root
    try:
        for part in parts:
            where = where / part
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=fd)
            try:
                child = os.open(part, _DIR_FLAGS | _NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if os.path.islink(where):
                    raise _refuse(where, "a symbolic link") from None
                if e.errno == errno.ENOTDIR:
                    raise _refuse(where, "a file, not a directory") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _split(path: str | os.PathLike, root: str | os.PathLike | None) -> tuple[Path, tuple[str, ...],
                                                                            str]:
    path = Path(os.path.abspath(path))
    root = Path(os.path.abspath(root)) if root is not None else path.parent
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not inside {root}") from None
    if not rel.parts:
        raise ValueError(f"{path} is the directory itself, not a file in it")
    return root, rel.parts[:-1], rel.parts[-1]


def safe_dir(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Creates ``path`` (and its parents below ``root``) as real directories; refuses a link
    anywhere below ``root``. Returns ``path``; use it before handing a directory to a library
    that writes files of its own (orbax, sqlite, TensorBoard).

    Raises:
        UnsafePathError: a component is a link or a file.
    """
    path = Path(os.path.abspath(path))
    root_path = Path(os.path.abspath(root))
    parts = path.relative_to(root_path).parts
    os.close(_open_dir(root_path, parts, create=True))
    return path


def check_not_link(path: str | os.PathLike) -> None:
    """Raises :class:`UnsafePathError` when ``path`` is a symbolic link."""
    if os.path.islink(path):
        raise _refuse(Path(path), "a symbolic link")


def atomic_write_bytes(path: str | os.PathLike, data: bytes,
                       root: str | os.PathLike | None = None) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same directory.

    No write follows a link: every directory from ``root`` (default: ``path``'s own directory)
    down to the file is opened without following links, the temporary file gets an
    unpredictable name and is created exclusively, and the rename replaces whatever ``path``
    was (a link planted there is replaced, never written through). The temporary file is
    fsynced, then renamed over ``path``, then the directory is fsynced. On any error the
    temporary file is removed and ``path`` is left as it was.

    Raises:
        UnsafePathError: a link (or a file) where a directory should be.
        OSError: the directory can't be written (read-only, full disk, missing).
    """
    root, parts, name = _split(path, root)
    dfd = _open_dir(root, parts, create=True)
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        with contextlib.suppress(OSError):
            os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write_text(path: str | os.PathLike, text: str,
                      root: str | os.PathLike | None = None) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), root)


def append_text(path: str | os.PathLike, text: str, root: str | os.PathLike | None = None
                ) -> None:
    """Appends ``text`` to ``path`` (created if missing) without following a link, in one
    ``write`` and fsynced: a crash leaves at most a torn last record, which readers of
    append-only files must skip."""
    root, parts, name = _split(path, root)
    dfd = _open_dir(root, parts, create=True)
    try:
        try:
            fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644,
                         dir_fd=dfd)
        except OSError:
            check_not_link(Path(root, *parts, name))
            raise
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(dfd)


# The most a small file of a run directory may hold (config, run.json, final.json, ...): a
# planted /dev/zero or a huge file is refused before it is read.
SMALL_FILE_LIMIT = 16 << 20


def read_small(path: str | os.PathLike, limit: int = SMALL_FILE_LIMIT) -> bytes:
    """The bytes of a small regular file of a run directory, never following a link.

    A link, a FIFO, a device or a directory is refused (a FIFO is opened without waiting for a
    writer), and so is a file larger than ``limit`` bytes, each in one line naming the path.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a regular file, or too large.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        if e.errno == errno.ELOOP or os.path.islink(path):
            raise ValueError(f"{path} is a symbolic link; evonas reads a run directory's files "
                             "only when they are regular files") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file ({_kind(info.st_mode)}); evonas "
                             "reads a run directory's files only when they are regular files")
        if info.st_size > limit:
            raise ValueError(f"{path} holds {info.st_size:,} bytes, more than the "
                             f"{limit:,} such a file may; it was not written by evonas")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ValueError(f"{path} holds more than {limit:,} bytes; it was not written by "
                             "evonas")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a plain file"


def read_small_text(path: str | os.PathLike, limit: int = SMALL_FILE_LIMIT) -> str:
    """:func:`read_small` as UTF-8 text (undecodable bytes replaced)."""
    return read_small(path, limit).decode("utf-8", errors="replace")


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when it is missing or unreadable (a stage whose
    marker file is not there yet, or a file that is not one evonas wrote: a link, a FIFO, a
    huge file, JSON nested too deep)."""
    try:
        value = json.loads(read_small_text(path))
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
