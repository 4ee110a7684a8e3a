"""The ``Encoding`` and ``TrainableEncoding`` protocols, their check, and the genome notation.

An encoding maps the integer genomes of a :class:`~evonas.genomes.GenomeSpace` to
architectures. A *search-only* encoding (:class:`Encoding`) is enough for every strategy and for
tabular benchmarks; a *trainable* one (:class:`TrainableEncoding`) adds one fixed-shape Flax
supernet and exact standalone builds, which is what the population trainer needs.

Shapes: a genome is ``int32[G]`` with ``G = space.num_genes``; a population ``int32[P, G]``.
"jit-able" means the method is called inside ``jax.jit`` and ``jax.vmap`` with a traced genome:
no Python branching on gene values, no host callbacks, output shapes independent of the genome.
"Host side" methods get a concrete genome (a numpy array) and may do anything.

Writing an encoding: implement the members below (a frozen ``dataclasses.dataclass`` is the
easy way to be hashable), then call :func:`check_trainable` on it; it names every member that is
missing or wrong and what it must return. ``examples/custom_encoding.py`` is a search-only
encoding and ``examples/trainable_encoding.py`` a trainable one; ``docs/plugins.md`` walks
through both.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

from evonas.genomes.space import GenomeSpace

Genome = Any  # int32[G] (numpy on the host, a traced jax.Array inside jit)
Bounds = Any  # hashable static shapes; each encoding defines its own type
Arch = Any  # a pytree of arrays decoded from a genome; each encoding defines its own type


@runtime_checkable
class Encoding(Protocol):
    """What every encoding provides: a space, a description and analytic costs.

    Attributes:
        name: the encoding's registered name (``"mlp"``), written into run directories and
            exported models so that they can be rebuilt with ``get_encoding(name, **options)``.
        space: the :class:`GenomeSpace` its genomes live in.

    Optional hooks (looked up with ``getattr``; leave them out when they don't apply):

    * ``parse(text: str) -> int32[G] | None``: the encoding's own command-line notation (the
      NAS-Bench-201 arch string ``|nor_conv_3x3~0|+...``). Return ``None`` to decline: the
      generic notation (a JSON list, comma-separated integers, a JSON ``{gene: value}`` object)
      is tried next (:func:`parse_genome`).
    * ``canonical(genomes: int32[..., G]) -> int32[..., G]``: jit-able; maps every genome to one
      representative of the architectures that compute the same function (isomorphic cells,
      genes that a switched-off layer ignores). De-duplication then treats isomorphic genomes
      as one: the experiment's history cache and ``run_searches(..., count="unique")``. It
      must be idempotent and keep genomes inside the space.
    * ``input_shape: tuple[int, ...]``: one example's shape, for measured latency.
    """

    name: str
    space: GenomeSpace

    def describe(self, genome: Genome) -> dict[str, Any]:
        """A readable, JSON-serialisable description of one architecture (host side).

        Args:
            genome: ``int32[G]``, inside ``space``.

        Returns:
            A dict of JSON types (the report draws ``layers`` lists and ``nodes`` dicts; any other
            keys are shown as text).
        """
        ...

    def cost(self, genome: Genome) -> dict[str, jax.Array]:
        """Analytic costs of one architecture; jit- and vmap-able.

        Args:
            genome: ``int32[G]`` (traced under jit).

        Returns:
            ``{name: float32 scalar}`` with at least ``params`` and ``flops`` (the architecture's
            own: multiply-accumulates per example); any other key (``depth``) becomes a cost a
            search may use as an objective, a constraint or a MAP-Elites descriptor.
        """
        ...


@runtime_checkable
class TrainableEncoding(Encoding, Protocol):
    """An encoding whose architectures can be trained: one fixed-shape supernet plus exact builds.

    The population trainer relies on this contract:

    * **Bounds** are a genome's exact static shapes (its *shape signature*: the genes that change
      tensor shapes; the others stay masks inside the supernet). ``bounds(g)`` for one genome,
      ``join(a, b)`` for a group, ``max_bounds()`` for the whole space. They must be hashable
      and compare equal when equal: compiled programs are cached by them.
    * Every plan initialises at ``max_bounds()`` and cuts the parameters down with
      ``slice_params``, so every plan starts from the same values and gives the same numbers.
    * ``cost(genome, bounds)`` must add ``executed_params`` and ``executed_flops``: what the
      supernet at ``bounds`` really computes (the trainer's cost model plans with them, and
      ``executed / useful`` is the price of masking). They depend on ``bounds`` only, so
      they should be constants of the traced function (the trainer then reads them without
      compiling anything).
    * The encoding itself must be hashable (a frozen dataclass): it is part of every compiled
      program's static key.
    """

    def cost(self, genome: Genome, bounds: Bounds = None) -> dict[str, jax.Array]:
        """Analytic costs; jit- and vmap-able (``bounds`` static).

        Args:
            genome: ``int32[G]``.
            bounds: the supernet's static shapes (``None``: ``max_bounds()``).

        Returns:
            ``params`` and ``flops`` (useful: the architecture's own), ``executed_params`` and
            ``executed_flops`` (what ``supernet(bounds)`` computes), plus any other costs,
            each a ``float32`` scalar.
        """
        ...

    def decode(self, genome: Genome) -> Arch:
        """The fixed-shape arch the supernet reads: masks, one-hot selectors, switches.

        Jit- and vmap-able; always shaped for the largest network of the space, whatever the
        genome (so a population of archs is one array per field).

        Args:
            genome: ``int32[G]``.

        Returns:
            A pytree of arrays (a ``NamedTuple`` of ``float32`` masks is typical).
        """
        ...

    def bounds(self, genome: Genome) -> Bounds:
        """The exact static shapes of one architecture (host side).

        Args:
            genome: ``int32[G]``, concrete.

        Returns:
            A hashable value (a frozen dataclass of tuples), equal for genomes of the same
            shapes.
        """
        ...

    def join(self, a: Bounds, b: Bounds) -> Bounds:
        """The smallest bounds that hold both ``a`` and ``b`` (host side): a supernet at the
        join computes every architecture of either."""
        ...

    def max_bounds(self) -> Bounds:
        """The bounds that hold every genome of the space: the fully masked supernet's."""
        ...

    def supernet(self, bounds: Bounds = None) -> Any:
        """The Flax module at ``bounds`` (``None``: ``max_bounds()``).

        ``module.apply(variables, arch, x) -> logits float32[batch, num_classes]`` computes the
        architecture ``arch = decode(genome)`` selects, with parameter shapes fixed by
        ``bounds`` (never by the genome); ``module.init(key, arch, x)`` initialises the active
        part as the standalone module would (fan-in of the real shape). Both are jit- and
        vmap-able over ``arch``. ``x`` is a batch ``[batch, *input_shape]``.
        """
        ...

    def slice_params(self, params: Any, bounds: Bounds) -> Any:
        """Max-bounds parameters cut down to ``bounds`` by static slicing.

        Args:
            params: ``{"params": ...}`` (or the inner dict) of ``supernet(max_bounds())``, with
                any number of leading population axes.
            bounds: the target bounds.

        Returns:
            The same structure with the shapes of ``supernet(bounds)``'s parameters.
        """
        ...

    def build(self, genome: Genome) -> tuple[Any, Callable[[Any], Any]]:
        """The standalone exact-shape module of one architecture (host side).

        Returns:
            ``(module, to_params)``: ``module.apply(variables, x) -> logits`` (no arch, no
            masks: what is retrained, exported and timed), and the map from max-bounds
            supernet variables to the module's variables, so that the module computes the same
            function as the supernet under ``decode(genome)``. The trainer trains ``module``
            when every member of a group builds an equal one, so modules should compare
            equal (and hash) when they are the same network; an unhashable module still works,
            through the supernet.
        """
        ...

    # Optional: ``single_path(params, genome, x) -> logits``, one architecture's forward pass on
    # max-bounds parameters (inner dict) computing only its own ops (``lax.switch`` per layer,
    # static slices of the shared kernels), jit-able with ``genome`` traced. The one-shot
    # evaluator trains and scores through it; without it, through the masked supernet (the
    # same function, at the whole supernet's cost).
    #
    # Optional: ``prune_channels(genome, variables, sparsity) -> (genome, variables)``, host
    # side: structured pruning that removes the units / channels with the smallest norms and
    # returns a smaller genome *of the same space* with its standalone variables (``build``'s
    # tree, cut from ``variables``), its analytic params at most ``1 - sparsity`` of the
    # original's where the space's widths allow. ``evonas prune --mode structured`` needs it;
    # magnitude pruning (``--mode unstructured``) works for every encoding.
    #
    # Optional: ``relax(weights) -> Arch``, jit-able and differentiable: the supernet's arch for
    # ``weights`` ``float32[G, K]``, a distribution over each gene's choices (``K`` the largest
    # cardinality, zeros beyond a gene's own), mixing what the genes select (ops by their
    # weights, widths by their channel masks); ``relax(one_hot(genome, K))`` must equal
    # ``decode(genome)``. The differentiable searches (DARTS, GDAS, DrNAS) need it. With it,
    # ``parameter_free(genome) -> float32`` (the share of choices without parameters) shows
    # their collapse.


# -- checking a trainable encoding ------------------------------------------------------------

TRAINABLE_MEMBERS: dict[str, str] = {
    "name": "a str attribute: the registered name",
    "space": "a GenomeSpace attribute",
    "describe": "describe(genome int32[G]) -> dict of JSON values (host side)",
    "cost": ("cost(genome int32[G], bounds=None) -> {'params', 'flops', 'executed_params', "
             "'executed_flops': float32 scalars}, jit-able"),
    "decode": "decode(genome int32[G]) -> a pytree of arrays shaped for the largest network, "
              "jit- and vmap-able",
    "bounds": "bounds(genome) -> a hashable value: the genome's exact static shapes (host side)",
    "join": "join(a, b) -> the smallest bounds holding both",
    "max_bounds": "max_bounds() -> the bounds holding every genome of the space",
    "supernet": "supernet(bounds=None) -> a flax.linen.Module, apply(variables, arch, x) -> "
                "logits",
    "slice_params": "slice_params(params, bounds) -> the max-bounds parameters cut to bounds",
    "build": "build(genome) -> (module, to_params): the standalone module, "
             "apply(variables, x) -> logits, and the map from max-bounds variables to its own "
             "(optional for the population trainer; retraining and export need it)",
}


def _problems(encoding: Any, require_build: bool) -> list[str]:
    """What is missing or wrong in ``encoding`` as a trainable encoding (empty: nothing)."""
    problems = []
    for member, contract in TRAINABLE_MEMBERS.items():
        if member in ("name", "build") and not require_build and not hasattr(encoding, member):
            continue  # the population trainer does without them
        if not hasattr(encoding, member):
            problems.append(f"{member} is missing; it must be {contract}")
        elif member not in ("name", "space") and not callable(getattr(encoding, member)):
            problems.append(f"{member} is not callable; it must be {contract}")
    if problems:
        return problems
    if hasattr(encoding, "name") and (not isinstance(encoding.name, str) or not encoding.name):
        problems.append(f"name is {encoding.name!r}; it must be {TRAINABLE_MEMBERS['name']}")
    if not isinstance(encoding.space, GenomeSpace):
        problems.append(f"space is a {type(encoding.space).__name__}; it must be a GenomeSpace")
        return problems
    try:
        hash(encoding)
    except TypeError:
        problems.append("the encoding is not hashable; make it a frozen dataclass (compiled "
                        "programs are keyed by it)")
    genome = np.zeros(encoding.space.num_genes, np.int32)

    def attempt(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # report the member, not a traceback
            text = str(err).strip().splitlines()
            problems.append(f"{what} raised {type(err).__name__}: {text[0] if text else ''}")
            return None

    bounds = attempt("bounds(genome)", lambda: encoding.bounds(genome))
    full = attempt("max_bounds()", encoding.max_bounds)
    for what, value in (("bounds(genome)", bounds), ("max_bounds()", full)):
        if value is not None:
            try:
                hash(value)
            except TypeError:
                problems.append(f"{what} returned an unhashable {type(value).__name__}; bounds "
                                "must be hashable (a frozen dataclass of tuples)")
    if bounds is not None and full is not None:
        joined = attempt("join(bounds(genome), max_bounds())", lambda: encoding.join(bounds, full))
        if joined is not None and joined != full:
            problems.append("join(bounds(genome), max_bounds()) is not max_bounds(); join must "
                            "return the smallest bounds holding both")
    attempt("decode(genome) under jax.eval_shape",
            lambda: jax.eval_shape(encoding.decode, jnp.asarray(genome)))
    costs = attempt("cost(genome, max_bounds()) under jax.eval_shape",
                    lambda: jax.eval_shape(lambda g: encoding.cost(g, full), jnp.asarray(genome)))
    if isinstance(costs, dict):
        missing = [k for k in ("params", "flops", "executed_params", "executed_flops")
                   if k not in costs]
        if missing:
            problems.append(f"cost(genome, bounds) lacks {missing}; it must return "
                            f"{TRAINABLE_MEMBERS['cost'].split(' -> ')[1]}")
    elif costs is not None:
        problems.append(f"cost(genome, bounds) returned a {type(costs).__name__}; it must return "
                        "a dict of float32 scalars")
    module = attempt("supernet(max_bounds())", lambda: encoding.supernet(full))
    if module is not None and not (callable(getattr(module, "init", None))
                                   and callable(getattr(module, "apply", None))):
        problems.append(f"supernet(bounds) returned a {type(module).__name__}, which has no "
                        "init/apply; it must return a flax.linen.Module")
    built = attempt("build(genome)", lambda: encoding.build(genome)) if hasattr(
        encoding, "build") else None
    if built is not None and not (isinstance(built, tuple) and len(built) == 2
                                  and callable(built[1])):
        problems.append(f"build(genome) returned {type(built).__name__}; it must return "
                        "(module, to_params)")
    return problems


def check_trainable(encoding: Any, require_build: bool = True) -> Any:
    """Checks that ``encoding`` implements :class:`TrainableEncoding`; returns it unchanged.

    Cheap: it calls the host-side members on the all-zeros genome and traces (never compiles)
    ``decode`` and ``cost``. Called wherever an encoding enters training.

    Args:
        encoding: the encoding to check.
        require_build: whether ``build`` and ``name`` must exist. The population trainer works
            without them (it then always trains the supernet); retraining, export and measured
            latency need them, and an experiment requires them.

    Raises:
        ValueError: one line naming every missing or wrong member and what it must be, e.g.
            ``"MyEncoding is not a trainable encoding: bounds is missing; it must be
            bounds(genome) -> a hashable value: ..."``.
    """
    problems = _cached_problems(encoding, require_build)
    if problems:
        raise ValueError(f"{type(encoding).__name__} is not a trainable encoding: "
                         + "; ".join(problems))
    return encoding


def trainable_problems(encoding: Any, require_build: bool = True) -> list[str]:
    """What :func:`check_trainable` would refuse, one sentence each (empty: nothing)."""
    return list(_cached_problems(encoding, require_build))


def _cached_problems(encoding: Any, require_build: bool) -> tuple[str, ...]:
    try:
        return _problems_of(encoding, require_build)
    except TypeError:  # unhashable: not cacheable, and _problems says so
        return tuple(_problems(encoding, require_build))


@functools.lru_cache(maxsize=64)
def _problems_of(encoding: Any, require_build: bool) -> tuple[str, ...]:
    return tuple(_problems(encoding, require_build))


# -- costs of a batch -------------------------------------------------------------------------


def batched_cost(encoding: Any) -> Callable[[Any], dict[str, jax.Array]]:
    """``jit(vmap(encoding.cost))``: the analytic costs of a batch, ``int32[B, G] -> {name:
    float32[B]}``. The one place evonas batches ``cost`` (which is per genome); a caller keeps
    the function it gets, which compiles once per batch shape.

    Raises:
        ValueError: ``cost`` does not return one number per name for one genome
            (:func:`cost_names`).
    """
    cost_names(encoding)
    return jax.jit(jax.vmap(encoding.cost))


def cost_names(encoding: Any) -> tuple[str, ...]:
    """The analytic costs ``encoding.cost`` reports (``params``, ``flops``, maybe ``depth``),
    without the supernet's ``executed_*`` counts; ``cost`` traced, never run.

    ``cost(genome)`` takes ONE genome and returns ``{name: scalar}``; evonas vmaps it over a
    batch wherever it needs a batch's costs. No name is required: ``params`` and ``flops`` fill
    the history's columns of those names when present.

    Raises:
        ValueError: one line naming ``<Encoding>.cost`` and what it returned instead.
    """
    genome = jnp.zeros((encoding.space.num_genes,), jnp.int32)
    where = f"{type(encoding).__name__}.cost(genome)"
    try:
        shapes = jax.eval_shape(encoding.cost, genome)
    except Exception as err:  # the plug-in's own error, named
        text = str(err).strip().splitlines()
        raise ValueError(f"{where} raised {type(err).__name__} on the all-zeros genome "
                         f"int32[{encoding.space.num_genes}]: {text[0] if text else ''}; it must "
                         "take one genome and be jit-able") from None
    if not isinstance(shapes, Mapping) or not all(isinstance(k, str) for k in shapes):
        raise ValueError(f"{where} returned a {type(shapes).__name__}; it must return a dict "
                         "{name: number} for one genome")
    for name, shape in shapes.items():
        if getattr(shape, "shape", None) != () or not jnp.issubdtype(shape.dtype, jnp.number):
            raise ValueError(
                f"{where} returned {name!r} of shape {tuple(getattr(shape, 'shape', ()))} and "
                f"dtype {getattr(shape, 'dtype', type(shape).__name__)}; each cost must be one "
                "number for ONE genome (evonas vmaps cost over a batch itself)")
    return tuple(k for k in shapes if not k.startswith("executed_"))


# -- the command-line notation of a genome ----------------------------------------------------


def parse_genome(encoding: Any, text: str) -> np.ndarray:
    """A genome from text: the encoding's own notation, else the generic one.

    The encoding's ``parse(text)`` is tried first when it has one; returning ``None`` declines.
    The generic notation is a JSON list of integers (``[0, 2, 1]``), comma-separated integers
    (``0,2,1``), a single integer for a one-gene space, or a JSON object ``{gene: value}`` whose
    values may be choice labels (``{"width_0": 64}``).

    Raises:
        ValueError: text in neither notation, or a genome outside the space (naming the gene).
    """
    text = str(text).strip()
    parse = getattr(encoding, "parse", None)
    if parse is not None:
        genome = parse(text)
        if genome is not None:
            return encoding.space.validate(genome)
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if isinstance(value, dict):
        return encoding.space.from_dict(value)
    if isinstance(value, str) and "," in value:
        try:
            value = [int(v) for v in value.split(",")]
        except ValueError:
            raise ValueError(f"cannot read genome {text!r}: expected integers") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise ValueError(
            f"cannot read genome {text!r}: give a JSON list of {encoding.space.num_genes} "
            "integers, comma-separated integers, or a JSON object {gene: value}"
        )
    return encoding.space.validate(value)


def canonical_genomes(encoding: Any, genomes: Any) -> np.ndarray:
    """``encoding.canonical(genomes)`` on the host (``int32[P, G]``), or the genomes unchanged
    when the encoding has no ``canonical`` hook."""
    genomes = np.asarray(genomes, np.int32)
    canonical = getattr(encoding, "canonical", None)
    if canonical is None:
        return genomes
    return np.asarray(canonical(jnp.asarray(genomes)), np.int32)
