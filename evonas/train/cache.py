"""Compiled-program cache, compile counting and JAX's persistent compilation cache."""

from __future__ import annotations

import os
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
    """

    def __init__(self):
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
        if event == _BACKEND_COMPILE and threading.get_ident() in self._threads:
            self.events += 1
            self.seconds += duration
            name = str(kwargs.get("fun_name", "?"))
            self.by_name[name] = self.by_name.get(name, 0) + 1
            self.seconds_by_name[name] = self.seconds_by_name.get(name, 0.0) + duration

    def _on_event(self, event: str, **kwargs: Any) -> None:
        if event == _DISK_CACHE_HIT and threading.get_ident() in self._threads:
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


def enable_persistent_cache(path: str) -> None:
    """Points JAX's persistent compilation cache at ``path``, caching even small, fast programs.

    JAX's defaults skip programs that compile in under a second; a population's exact-shape
    programs are exactly those, and reloading them is what makes the ``grouped`` plan cheap from
    one run to the next.
    """
    path = os.path.abspath(os.path.expanduser(path))
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if jax.config.jax_compilation_cache_dir != path:
        jax.config.update("jax_compilation_cache_dir", path)
        _jax_cc.reset_cache()  # JAX opens its cache once; reopen it at the new path


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
