"""Zero-cost proxies: scores of untrained networks that rank architectures without training them.

Computed for a whole population in one vmapped program, at the same initial parameters the
trainer starts from (the max-bounds supernet under each genome's arch; masked units contribute
nothing), on one batch of training examples:

* ``naswot`` (Mellor et al. 2021, "Neural Architecture Search without Training"): the log
  determinant of ``K = C C^T + (1 - C)(1 - C)^T``, where row ``i`` of ``C`` holds the binary codes
  (pre-activation > 0) of every unit of the network on example ``i``. Networks whose units cut
  the inputs into distinct regions score higher. Units are those a module sows into
  ``_layers.CODES`` (the built-in encodings do; for an activation other than ReLU the code is the
  pre-activation's sign).
* ``synflow`` (Tanaka et al. 2020, "Pruning neural networks without any data by iteratively
  conserving synaptic flow"): ``sum(|theta| * d R / d |theta|)`` with ``R`` the sum of the
  network's output on an all-ones input, every parameter replaced by its absolute value.
* ``grad_norm`` and ``snip`` (Abdelfattah et al. 2021, "Zero-Cost Proxies for Lightweight NAS";
  snip after Lee et al. 2019): the norm of the loss gradient, and ``sum(|theta * grad|)``.

All four are higher-is-better. An encoding that normalises with batch statistics (NAS-Bench-201)
makes ``synflow``'s single all-ones input degenerate (every normalised activation is its bias), as
in the literature, which switches normalisation off for it; evonas refuses synflow there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from evonas import checks
from evonas.genomes import _layers
from evonas.objectives.metrics import PROXY_METRICS
from evonas.train.cache import ProgramCache
from evonas.train.programs import init_population
from evonas.train.step import cross_entropy

PROXIES: tuple[str, ...] = PROXY_METRICS


def check_proxies(what: str, names: Sequence[str], encoding: Any = None) -> tuple[str, ...]:
    """Validates proxy names (and that ``encoding`` allows each).

    Raises:
        ValueError: an unknown name, naming it and the allowed ones; synflow on an encoding that
            normalises with batch statistics.
    """
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    for name in names:
        checks.choice(what, name, PROXIES)
    if "synflow" in names and getattr(encoding, "batch_statistics", False):
        raise ValueError(f"{what}: synflow is degenerate for {type(encoding).__name__}, which "
                         "normalises with batch statistics (one all-ones input); use naswot, "
                         "grad_norm or snip")
    return names


def naswot(codes: Sequence[tuple[jax.Array, jax.Array]]) -> jax.Array:
    """``log |det K|`` of the codes' kernel (Mellor et al. 2021); masked units count for nothing.

    Args:
        codes: ``(codes float32[B, U], mask float32[U])`` per layer.
    """
    kernel = 0.0
    for c, m in codes:
        kernel = kernel + (c * m) @ c.T + ((1.0 - c) * m) @ (1.0 - c).T
    return jnp.linalg.slogdet(kernel)[1]


def _sum(tree: Any) -> jax.Array:
    return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(tree))


def _scores(encoding: Any, names: tuple[str, ...], params: Any, genome: jax.Array,
            x: jax.Array, y: jax.Array) -> dict[str, jax.Array]:
    """Every proxy of one individual (vmapped by the caller)."""
    net = encoding.supernet(encoding.max_bounds())
    arch = encoding.decode(genome)
    out = {}
    if "grad_norm" in names or "snip" in names:
        grads = jax.grad(lambda p: cross_entropy(net.apply({"params": p}, arch, x), y))(params)
        if "grad_norm" in names:
            out["grad_norm"] = jnp.sqrt(_sum(jax.tree.map(jnp.square, grads)))
        if "snip" in names:
            out["snip"] = _sum(jax.tree.map(lambda p, g: jnp.abs(p * g), params, grads))
    if "synflow" in names:
        signs = jax.tree.map(jnp.abs, params)
        ones = jnp.ones((1, *x.shape[1:]), x.dtype)
        grads = jax.grad(lambda p: jnp.sum(net.apply({"params": p}, arch, ones)))(signs)
        out["synflow"] = _sum(jax.tree.map(lambda p, g: p * g, signs, grads))
    if "naswot" in names:
        _, sown = net.apply({"params": params}, arch, x, mutable=[_layers.CODES])
        codes = jax.tree.leaves(sown.get(_layers.CODES, {}),
                                is_leaf=lambda v: isinstance(v, tuple) and len(v) == 2
                                and hasattr(v[0], "shape"))
        if not codes:
            raise ValueError(f"the naswot proxy needs {type(encoding).__name__}'s supernet to "
                             f"sow its units' codes into the {_layers.CODES!r} collection "
                             "(evonas.genomes._layers.sow_codes); this one sows none")
        out["naswot"] = naswot(codes)
    return out


def zero_cost_scores(key: jax.Array, encoding: Any, genomes: Any, dataset: Any,
                     names: Sequence[str] = PROXIES, batch_size: int = 64,
                     cache: ProgramCache | None = None) -> dict[str, np.ndarray]:
    """The zero-cost proxies ``names`` of every genome, ``{name: float32[P]}``.

    Args:
        key: initialisation and the batch: ``init_key, batch_key = split(key)``, as the trainer
            splits it, so the networks scored are those training would start from.
        encoding: a trainable encoding.
        genomes: ``int[P, G]``.
        dataset: an ``evonas.data.Dataset`` (one batch of its training split is used).
        names: which proxies (:data:`PROXIES`).
        batch_size: examples of the batch (naswot's kernel is ``batch x batch``).
        cache: where the compiled program is kept between calls (the experiment's
            :class:`~evonas.train.ProgramCache`); None compiles it for this call.

    Raises:
        ValueError: an unknown proxy, or one the encoding can't give.
    """
    names = check_proxies("proxy", names, encoding)
    genomes = np.asarray(genomes, np.int32)
    init_key, batch_key = jax.random.split(key)
    n = len(dataset.y_train)
    batch = min(int(batch_size), n)
    idx = np.asarray(jax.random.permutation(batch_key, n)[:batch])
    x, y = jnp.asarray(dataset.x_train[idx]), jnp.asarray(dataset.y_train[idx])
    return {k: np.asarray(v, np.float32) for k, v in
            _program(cache or ProgramCache(), encoding, names)(
                init_key, jnp.asarray(genomes), x, y).items()}


def _program(cache: ProgramCache, encoding: Any, names: tuple[str, ...]) -> Any:
    """One jitted program per (encoding, proxies): init and score the whole population."""

    def run(init_key, genomes, x, y):
        index = jnp.arange(genomes.shape[0], dtype=jnp.int32)
        params = init_population(encoding, init_key, index, genomes, x[:1])
        return jax.vmap(lambda p, g: _scores(encoding, names, p, g, x, y))(params, genomes)

    return cache.program(("proxies", encoding, names), lambda: jax.jit(run))
