"""Compiled-program cache, compile counting and JAX's persistent compilation cache."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import tempfile
import threading
from typing import Any

import jax
from jax._src import compilation_cache as _jax_cc
from jax._src import dispatch as _jax_dispatch

from evonas.train import memory, programs
from evonas.train.config import compiler_options

_BACKEND_COMPILE = _jax_dispatch.BACKEND_COMPILE_EVENT  # recorded for compiles and disk-cache hits
_DISK_CACHE_HIT = "/jax/compilation_cache/cache_hits"


class CompileCounter:
    """Counts XLA compiles (and seconds spent compiling) while it is active, via ``jax.monitoring``.

    A program loaded from the persistent compilation cache is counted in ``disk_hits``, not in
    ``compiles``. Usable as a context manager; listeners are removed on exit.

    Args:
        all_threads: count every thread's compiles (the experiment's per-generation count,
            which includes the trainer's compiling-ahead thread), not only the creating one's.
    """

    def __init__(self, all_threads: bool = False):
        self.all_threads = all_threads
        self.events = 0
        self.disk_hits = 0
        self.by_name: dict[str, int] = {}  # backend compiles (and disk loads) per jitted function
        self.seconds_by_name: dict[str, float] = {}  # seconds of those, per jitted function
        self.seconds = 0.0
        self._threads = {threading.get_ident()}

    @property
    def compiles(self) -> int:
        """Programs really compiled (backend compiles minus persistent-cache hits)."""
        return self.events - self.disk_hits

    def _on_duration(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == _BACKEND_COMPILE and (self.all_threads
                                          or threading.get_ident() in self._threads):
            self.events += 1
            self.seconds += duration
            name = str(kwargs.get("fun_name", "?"))
            self.by_name[name] = self.by_name.get(name, 0) + 1
            self.seconds_by_name[name] = self.seconds_by_name.get(name, 0.0) + duration

    def _on_event(self, event: str, **kwargs: Any) -> None:
        if event == _DISK_CACHE_HIT and (self.all_threads
                                         or threading.get_ident() in self._threads):
            self.disk_hits += 1

    def adopt_thread(self) -> None:
        """Counts the calling thread's compiles too (a thread compiling ahead for the one that
        made this counter)."""
        self._threads.add(threading.get_ident())

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)
        return self

    def __exit__(self, *exc: Any) -> None:
        from jax._src import monitoring

        monitoring.unregister_event_duration_listener(self._on_duration)
        monitoring.unregister_event_listener(self._on_event)


AUTO = "auto"
DEFAULT_MAX_BYTES = 2 * 1024**3  # the persistent cache's bound on disk; oldest-used go first


def default_cache_dir() -> str:
    """Where ``compile_cache_dir: auto`` keeps compiled programs: ``$EVONAS_CACHE_DIR/xla``,
    else the directory JAX was already pointed at (``JAX_COMPILATION_CACHE_DIR``), else
    ``~/.cache/evonas/xla``. Never inside a run directory: the cache holds native code, and a
    run directory may come from someone else."""
    explicit = os.environ.get("EVONAS_CACHE_DIR")
    if explicit:
        return os.path.join(explicit, "xla")
    if jax.config.jax_compilation_cache_dir:
        return str(jax.config.jax_compilation_cache_dir)
    return os.path.join(os.path.expanduser("~"), ".cache", "evonas", "xla")


def resolve_cache_dir(setting: str | None) -> str | None:
    """``train.compile_cache_dir`` as a directory: ``"auto"`` is :func:`default_cache_dir`,
    ``None`` (or ``off``) is no persistent cache."""
    if setting is None or setting is False or setting == "off":
        return None
    return default_cache_dir() if setting == AUTO else setting


class SignedCache(_jax_cc.CacheInterface):
    """JAX's persistent compilation cache, each entry bound to its key and checked on read.

    JAX names an entry by a hash of the program, its options, the devices and the versions of
    jax and XLA, so programs of another shape, machine or version never share a name. Its file
    store trusts a file under that name, though: a truncated write, a corrupted disk or a file
    copied under another entry's name would be deserialised and run. Here every entry is stored
    as ``MAGIC + sha256(MAGIC, key, payload) + payload``; a read that does not match (corrupt,
    renamed, foreign, written by plain JAX) is a miss, so the program compiles and the entry is
    rewritten. Writes go to a temporary file and are renamed into place (concurrent processes
    sharing the directory see a whole entry or none; a rename never follows a link), and the
    directory is bounded: past ``max_bytes`` the least recently used entries are deleted.

    The check is integrity, not authenticity: anyone who can write the directory can write
    native code that this process runs, so keep it where only you write (the default, in your
    cache directory, is created private).
    """

    SUFFIX = ".evonas-xla"
    MAGIC = b"evonas-xla-1\n"

    def __init__(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES):
        self.path = path
        self._path = path  # what JAX's own messages read
        self.max_bytes = int(max_bytes)
        self.hits = 0
        self.rejected = 0  # entries that did not match their key (deleted, then recompiled)
        self._lock = threading.Lock()

    def _file(self, key: str) -> str | None:
        if not key or not all(c.isalnum() or c in "-_." for c in key) or key.startswith("."):
            return None  # not a name JAX makes: never a path outside the directory
        return os.path.join(self.path, key + self.SUFFIX)

    def _digest(self, key: str, payload: bytes) -> bytes:
        return hashlib.sha256(self.MAGIC + key.encode() + b"\0" + payload).digest()

    def get(self, key: str) -> bytes | None:
        path = self._file(key)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            data = f.read()
        head = len(self.MAGIC)
        payload = data[head + 32:]
        if (data[:head] != self.MAGIC
                or not hmac.compare_digest(data[head:head + 32], self._digest(key, payload))):
            with self._lock:
                self.rejected += 1
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recency, for the bound
        with self._lock:
            self.hits += 1
        return payload

    def put(self, key: str, value: bytes) -> None:
        path = self._file(key)
        if path is None or len(value) > self.max_bytes:
            return
        blob = self.MAGIC + self._digest(key, value) + value
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.path)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
        except OSError:  # a full or read-only disk costs a compile, never the run
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(tmp)
            return
        self.evict()

    def entries(self) -> list[tuple[float, int, str]]:
        """``(last used, bytes, path)`` of every entry (links and other files left alone)."""
        out = []
        with contextlib.suppress(OSError), os.scandir(self.path) as it:
            for entry in it:
                if entry.name.endswith(self.SUFFIX) and entry.is_file(follow_symlinks=False):
                    with contextlib.suppress(OSError):
                        st = entry.stat(follow_symlinks=False)
                        out.append((st.st_mtime, st.st_size, entry.path))
        return out

    def evict(self) -> int:
        """Deletes the least recently used entries while the directory holds more than
        ``max_bytes`` (down to 80 % of it); returns how many went."""
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        if total <= self.max_bytes:
            return 0
        gone = 0
        for _, size, path in sorted(entries):
            if total <= 0.8 * self.max_bytes:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
                total -= size
                gone += 1
        return gone


def enable_persistent_cache(path: str | None = AUTO,
                            max_bytes: int = DEFAULT_MAX_BYTES) -> SignedCache | None:
    """Keeps every compiled program of this process in a persistent cache at ``path``
    (``"auto"``: :func:`default_cache_dir`; ``None``: nothing changes), so a second run of the
    same experiment loads its programs instead of compiling them.

    JAX's defaults skip programs that compile in under a second; a population's exact-shape
    programs are exactly those, so every program is kept. The store is a :class:`SignedCache`
    (entries checked against their key, bounded by ``max_bytes``).

    Returns:
        The cache now in use (None where ``path`` is None).
    """
    path = resolve_cache_dir(path)
    if path is None:
        return None
    path = os.path.abspath(os.path.expanduser(path))
    current = getattr(_jax_cc, "_cache", None)
    if isinstance(current, SignedCache) and current.path == path:
        current.max_bytes = int(max_bytes)
        return current
    os.makedirs(path, mode=0o700, exist_ok=True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_dir", path)
    _jax_cc.reset_cache()  # JAX opens its cache once; open ours at the new path
    cache = SignedCache(path, max_bytes)
    with _jax_cc._cache_initialized_mutex:
        _jax_cc._cache = cache
        _jax_cc._cache_initialized = True
    cache.evict()
    return cache


# program name -> (function, static_argnums, donate_argnums)
_PROGRAMS: dict[str, tuple[Any, tuple[int, ...], tuple[int, ...]]] = {
    "init_population": (programs.init_population, (0,), ()),
    "train_chunk": (programs.train_chunk, (0,), (1,)),
    "evaluate_group": (programs.evaluate_group, (0, 6), ()),
}


class ProgramCache:
    """The population trainer's jitted programs, reused across calls and generations.

    jit keys each compiled program by its static :class:`~evonas.train.programs.GroupSpec`
    (encoding, bounds, training options) and argument shapes (group size), so each (bounds,
    group size, options) compiles once per process (jit's cache belongs to the jitted function,
    so it is shared by every ``ProgramCache``). ``seen`` records the keys this cache ran, for the
    ``auto`` plan's cost model: pass the same cache every generation so it knows what is free.

    ``init``, ``train`` and ``evaluate`` call one jitted function per (program, XLA option set):
    the options come from ``TrainConfig.xla`` (``spec.options.xla`` for the per-group programs,
    the ``xla`` keyword for ``init``) through :func:`~evonas.train.config.compiler_options`.
    Other jitted programs an experiment reuses (the zero-cost proxies, the one-shot scorer, an
    encoding's batched cost) live here too (:meth:`program`), under the same bound.

    Args:
        max_programs: the most compiled programs kept (see :meth:`trim`); None: no bound.
    """

    def __init__(self, max_programs: int | None = None):
        self.max_programs = max_programs
        self._jits: dict[Any, Any] = {}
        self.seen: set[tuple[Any, int]] = set()
        # measured seconds per step, per (spec at the bounds, size, trains a standalone module)
        self.step_seconds: dict[tuple[Any, int, bool], float] = {}
        self._activations: dict[tuple[Any, ...], memory.Activations] = {}

    def activations(self, encoding: Any, input_shape: tuple[int, ...],
                    batch_size: int) -> memory.Activations:
        """:func:`~evonas.train.memory.max_bounds_activations`, traced once per cache."""
        key = (encoding, input_shape, batch_size)
        if key not in self._activations:
            self._activations[key] = memory.max_bounds_activations(encoding, input_shape,
                                                                   batch_size)
        return self._activations[key]

    def _jit(self, program: str, xla: str) -> Any:
        key = (program, xla)
        if key not in self._jits:
            fun, static, donate = _PROGRAMS[program]
            self._jits[key] = jax.jit(fun, static_argnums=static, donate_argnums=donate,
                                      compiler_options=compiler_options(program, xla))
        return self._jits[key]

    def program(self, key: Any, build: Any) -> Any:
        """The jitted function ``build()`` made the first time ``key`` was asked (a hashable
        name of the program and what it is specialised to), kept with the trainer's programs:
        its compiled executables count against ``max_programs``."""
        if key not in self._jits:
            if self.max_programs is not None:
                self.trim(self.max_programs)
            self._jits[key] = build()
        return self._jits[key]

    def init(self, encoding: Any, key: jax.Array, index: jax.Array, genomes: jax.Array,
             x: Any, *, xla: str = "default") -> Any:
        """:func:`~evonas.train.programs.init_population`, compiled under ``xla`` (see
        :func:`~evonas.train.config.compiler_options`)."""
        return self._jit("init_population", xla)(encoding, key, index, genomes, x)

    def train(self, spec: programs.GroupSpec, *args: Any) -> Any:
        """:func:`~evonas.train.programs.train_chunk` (state donated), compiled under
        ``spec.options.xla``."""
        return self._jit("train_chunk", spec.options.xla)(spec, *args)

    def evaluate(self, spec: programs.GroupSpec, *args: Any) -> Any:
        """:func:`~evonas.train.programs.evaluate_group`, compiled under ``spec.options.xla``."""
        return self._jit("evaluate_group", spec.options.xla)(spec, *args)

    def compile_train(self, spec: programs.GroupSpec, *args: Any) -> None:
        """Compiles :meth:`train` for these arguments (``jax.ShapeDtypeStruct`` leaves with
        their shardings) into JAX's executable cache, without running it."""
        self._jit("train_chunk", spec.options.xla).lower(spec, *args).compile()

    def compile_evaluate(self, spec: programs.GroupSpec, *args: Any) -> None:
        """Compiles :meth:`evaluate` for these arguments, without running it."""
        self._jit("evaluate_group", spec.options.xla).lower(spec, *args).compile()

    def size(self) -> int:
        """Number of compiled programs held (each jitted function's cache entries)."""
        return sum(f._cache_size() for f in self._jits.values())

    def trim(self, max_programs: int) -> bool:
        """Frees every compiled program when more than ``max_programs`` are held.

        A search that keeps meeting new shapes compiles programs without end, each a few MB
        (measured: about 80 MB a generation for populations of 16 conv networks), so the cache
        is bounded: past the limit it starts over, and a shape met again compiles again (the
        same program, so the same numbers). JAX's cache can't drop one entry of a jitted
        function, only all of them; the measured step times, which only guide ``auto``, go too.

        Returns:
            Whether the cache was cleared.
        """
        if self.size() <= max_programs:
            return False
        for fun in self._jits.values():
            fun.clear_cache()
        # Programs compiled ahead (``compile_train``) are held by JAX's lowering caches, which a
        # jitted function's ``clear_cache`` leaves alone: clear those too (every jitted
        # function of the process compiles again once, which a bound hit every hundred-odd
        # programs can afford).
        jax.clear_caches()
        self.seen.clear()
        self.step_seconds.clear()
        return True
