"""Measured latency: the exact-shape standalone model of a genome, timed on the current device.

Analytic FLOPs rank architectures by arithmetic, not by time: a depthwise convolution or a pool
has few FLOPs and poor hardware utilisation, a wide layer the opposite. ``LatencyMeter`` times
what a deployment would run: ``encoding.build(genome)`` jitted alone, inference only, at a fixed
batch size, the median of repeated calls after warm-up (compile excluded). Results are cached per
architecture (by genome), so a genome is timed once per meter; an experiment stores them in its
history, so a resumed run reuses them rather than timing again.

Latency is a measurement, not a function of the genome: it varies from machine to machine and a
little from call to call. A search whose objective or constraint is a measured latency is
therefore reproducible only on the same machine and load; ``repeats`` trades time for noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.evaluators.base import Screen
from evonas.objectives.constraints import Constraint

_OWNER = "LatencyMeter"


def time_call(fn: Callable[[], Any], repeats: int = 30, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds, each call waited for to finish.

    Args:
        fn: a call that returns JAX arrays (its result is blocked on).
        repeats: timed calls; the median is returned.
        warmup: untimed calls first (the first compiles).
    """
    checks.positive_int("time_call.repeats", repeats)
    for _ in range(max(int(warmup), 1)):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


class LatencyMeter:
    """Times ``encoding.build(genome)`` on the default device; ``meter(genome) -> ms``.

    Args:
        encoding: a trainable encoding (``build`` and ``input_shape``).
        batch_size: examples per timed call (1 is on-device, single-request latency).
        repeats: timed calls per architecture; the median is reported.
        warmup: untimed calls before timing (compile and caches).
        input_shape: one example's shape; default ``encoding.input_shape``.

    Raises:
        ValueError: a non-positive ``batch_size`` / ``repeats``, or an encoding without an input
            shape when none is given.
    """

    def __init__(self, encoding: Any, batch_size: int = 1, repeats: int = 30, warmup: int = 3,
                 input_shape: Sequence[int] | None = None):
        self.encoding = encoding
        self.batch_size = checks.positive_int(f"{_OWNER}.batch_size", batch_size)
        self.repeats = checks.positive_int(f"{_OWNER}.repeats", repeats)
        self.warmup = checks.positive_int(f"{_OWNER}.warmup", warmup)
        shape = input_shape if input_shape is not None else getattr(encoding, "input_shape", None)
        if shape is None:
            raise ValueError(
                f"{_OWNER}: encoding {type(encoding).__name__} has no input_shape; pass "
                "input_shape=(one example's shape, no batch axis)"
            )
        self.input_shape = tuple(int(s) for s in shape)
        self._cache: dict[bytes, float] = {}

    def __call__(self, genome: Any) -> float:
        """The median latency of ``genome``'s standalone model in milliseconds (cached)."""
        genes = np.asarray(genome, np.int32).ravel()
        key = genes.tobytes()
        if key not in self._cache:
            self._cache[key] = self._measure(genes)
        return self._cache[key]

    def measure_many(self, genomes: Any) -> np.ndarray:
        """``float64[P]``: the latency of each genome (``int32[P, G]``), in order."""
        return np.asarray([self(g) for g in np.asarray(genomes, np.int32)], np.float64)

    def _measure(self, genome: np.ndarray) -> float:
        module, _ = self.encoding.build(genome)
        x = jnp.zeros((self.batch_size, *self.input_shape), jnp.float32)
        variables = module.init(jax.random.key(0), x)
        apply = jax.jit(module.apply)
        return time_call(lambda: apply(variables, x), self.repeats, self.warmup)

    def __len__(self) -> int:
        """Architectures timed so far."""
        return len(self._cache)

    def __repr__(self) -> str:
        return (f"{_OWNER}(batch_size={self.batch_size}, repeats={self.repeats}, "
                f"warmup={self.warmup}, input_shape={self.input_shape})")


class Latency(Screen):
    """Measures ``latency`` (milliseconds, :class:`LatencyMeter`) of every genome that reaches
    it, into ``Results.metrics``; genomes that break a constraint on it fail without being
    evaluated. Put inside :class:`~evonas.evaluators.costs.Costs`, only architectures that meet
    the cost constraints are timed.

    Args:
        inner: the evaluator of the genomes that meet the constraints.
        meter: the :class:`LatencyMeter` (it caches each architecture's time).
        constraints: bounds on ``latency``.
    """

    measures = ("latency",)

    def __init__(self, inner: Any, meter: LatencyMeter, constraints: Sequence[Constraint] = ()):
        super().__init__(inner, constraints)
        self.meter = meter

    def measure(self, key: jax.Array, genomes: np.ndarray) -> dict[str, np.ndarray]:
        return {"latency": self.meter.measure_many(genomes)}
