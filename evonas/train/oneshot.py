"""One-shot weight sharing: single-path one-shot (Guo et al. 2020, "Single Path One-Shot Neural
Architecture Search with Uniform Sampling").

One supernet of an encoding (its max-bounds parameters) is trained by sampling one architecture
of the space per step, uniformly, and taking a step on that architecture's loss. An architecture
is then scored by its validation accuracy with the supernet's weights, with no training of its
own.

The forward pass of one architecture is ``encoding.single_path(params, genome, x)`` where the
encoding has it (the built-in ``mlp``, ``conv`` and ``nb201`` do): a ``lax.switch`` per layer or
edge runs only the sampled op at its real shape, so, outside ``vmap``, a step costs about the
architecture's own FLOPs. Any other trainable encoding falls back to its masked supernet
(``supernet(max_bounds()).apply(params, decode(genome), x)``), which computes the same function
at the cost of the whole supernet. Everything is one compiled program per use: the training
step (``lax.scan`` over ``steps_per_call`` sampled steps) and the scoring (``lax.map`` over the
population, one architecture at a time, so each switch stays a branch).

Normalisation: the ``nb201`` cells normalise with the batch's statistics in training and scoring
alike (no running averages), so every architecture is scored with statistics of its own
activations; nothing of another architecture's statistics carries over.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from evonas.data.batches import batch_indices
from evonas.genomes.encoding import trainable_problems
from evonas.train.cache import ProgramCache
from evonas.train.config import TrainConfig, library_options
from evonas.train.metrics import confusion_metrics
from evonas.train.programs import in_batches
from evonas.train.step import cross_entropy

Forward = Callable[[Any, jax.Array, jax.Array], jax.Array]


def check_one_shot(encoding: Any, where: str = "evaluator oneshot") -> None:
    """Raises one line when ``encoding`` has no supernet to share weights through.

    Raises:
        ValueError: naming the encoding and what it lacks.
    """
    problems = trainable_problems(encoding, require_build=False)
    if problems:
        name = getattr(encoding, "name", type(encoding).__name__)
        raise ValueError(f"{where} needs an encoding with a weight-sharing supernet (supernet, "
                         f"decode, max_bounds, slice_params); encoding {name!r}: {problems[0]}")


def path_forward(encoding: Any) -> Forward:
    """``forward(params, genome, x) -> logits`` of one architecture on max-bounds parameters:
    the encoding's ``single_path`` when it has one, else its masked supernet."""
    single = getattr(encoding, "single_path", None)
    if callable(single):
        return single
    supernet = encoding.supernet(encoding.max_bounds())

    def masked(params: Any, genome: jax.Array, x: jax.Array) -> jax.Array:
        inner = params.get("params", params)
        return supernet.apply({"params": inner}, encoding.decode(genome), x)

    return masked


def supernet_init(key: jax.Array, encoding: Any, x: np.ndarray, samples: int = 32) -> Any:
    """The supernet's initial max-bounds parameters (the inner dict).

    The supernet's initialisers scale by the fan-in of the architecture they initialise for, and
    a shared weight serves every architecture: each leaf takes, from one draw of the unit
    values, the smallest scale any of ``samples`` architectures drawn from ``key`` gives it (the
    largest fan-in, so no architecture starts with outsized activations; one initialised for a
    layer an architecture leaves off would have the scale of a fan-in of one).
    """
    k_genome, k_init = jax.random.split(key)
    genomes = encoding.space.sample(k_genome, samples)
    supernet = encoding.supernet(encoding.max_bounds())
    example = jnp.asarray(x[:1])
    init = jax.jit(jax.vmap(lambda g: supernet.init(k_init, encoding.decode(g), example)))
    params = init(genomes)["params"]

    def smallest(leaf: jax.Array) -> np.ndarray:
        leaf = np.asarray(leaf)
        scale = np.sqrt(np.mean(np.square(leaf.reshape(len(leaf), -1)), axis=1))
        return leaf[int(np.argmin(np.where(scale > 0, scale, np.inf)))] if scale.any() else leaf[0]

    return jax.tree.map(smallest, params)


class SupernetState(NamedTuple):
    params: Any
    opt_state: Any
    step: jax.Array  # int32 scalar: steps done


@dataclasses.dataclass(frozen=True)
class SupernetResult:
    """A trained supernet and what it cost.

    Attributes:
        params: the max-bounds parameters (inner dict).
        steps: steps trained (all of them).
        resumed_from: the step a kept state resumed from (0: trained from the start).
        seconds: wall seconds of this call (compiles included).
        step_seconds: seconds per supernet step once compiled (NaN when not measured).
        loss: mean training loss over the last call of steps.
    """

    params: Any
    steps: int
    resumed_from: int
    seconds: float
    step_seconds: float
    loss: float


def _options(config: TrainConfig, steps: int) -> Any:
    plain = dataclasses.replace(config, steps=steps)
    return plain.program_options()


def _supernet_step(forward: Callable[..., jax.Array], optimizer: optax.GradientTransformation,
                   x_train: jax.Array, y_train: jax.Array, steps: int, smoothing: float = 0.0
                   ) -> Callable[[SupernetState, Any], tuple[SupernetState, jax.Array]]:
    """One supernet step on one sampled architecture and batch (``lax.scan``'s body); a step
    past ``steps`` (the last call may run past the budget) changes nothing. ``smoothing``:
    the training options' label smoothing."""

    def one(state: SupernetState, inputs: Any) -> tuple[SupernetState, jax.Array]:
        idx, genome = inputs
        loss_fn = lambda p: cross_entropy(forward(p, genome, x_train[idx]), y_train[idx],
                                          smoothing)
        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        active = state.step < steps
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)
        return SupernetState(keep(params, state.params), keep(opt_state, state.opt_state),
                             state.step + active.astype(jnp.int32)), jnp.where(active, loss, 0.0)

    return one


def train_supernet(key: jax.Array, encoding: Any, dataset: Any, config: TrainConfig,
                   steps: int, *, load: Callable[[Any], SupernetState | None] | None = None,
                   save: Callable[[SupernetState], None] | None = None,
                   save_every: int | None = None,
                   init: Callable[[Any], Any] | None = None) -> SupernetResult:
    """Trains the supernet of ``encoding`` for ``steps`` uniformly sampled single-path steps.

    ``config`` gives the optimiser, learning rate (its schedule runs over ``steps``), batch size
    and steps per compiled call. ``init_key, sample_key, batch_key = split(key, 3)``: step ``t``
    trains architecture ``space.sample(sample_key, steps)[t]`` on batch ``t``, so a run resumed
    from a kept state continues exactly.

    Args:
        key: a ``jax.random`` key.
        encoding: a trainable encoding (see :func:`check_one_shot`).
        dataset: an ``evonas.data.Dataset``.
        config: the training options.
        steps: supernet steps.
        load: returns a kept state (shaped like the argument) or None: resume from it.
        save: keeps a state; called every ``save_every`` steps and at the end.
        save_every: steps between saves (default: a tenth of ``steps``).
        init: maps the freshly initialised parameters to the ones training starts from (a
            warm start's earlier supernet); a kept state from ``load`` still wins.

    Raises:
        FloatingPointError: the supernet's loss stopped being finite (naming the step).
    """
    check_one_shot(encoding)
    began = time.perf_counter()
    init_key, sample_key, batch_key = jax.random.split(key, 3)
    options = _options(config, steps)
    optimizer = options.optimizer_fn()
    spc = config.steps_per_call
    calls = -(-steps // spc)
    genomes = encoding.space.sample(sample_key, calls * spc)
    indices = batch_indices(batch_key, len(dataset.y_train), config.batch_size, calls * spc)
    params = supernet_init(init_key, encoding, dataset.x_train)
    if init is not None:
        params = init(params)
    state = SupernetState(params, optimizer.init(params), jnp.zeros((), jnp.int32))
    kept = load(state) if load is not None else None
    resumed = 0
    if kept is not None:
        state, resumed = kept, int(kept.step)
    one = _supernet_step(path_forward(encoding), optimizer, jnp.asarray(dataset.x_train),
                         jnp.asarray(dataset.y_train), steps, options.label_smoothing)

    # the trainer's kernel options (XLA's own convolutions on a CPU under xla="fast")
    @functools.partial(jax.jit, compiler_options=library_options(config.xla))
    def call(state: SupernetState, idx: jax.Array, genomes: jax.Array) -> Any:
        return jax.lax.scan(one, state, (idx, genomes))

    every = save_every or max(spc, steps // 10)
    last_saved, losses, timed, timed_steps = resumed, None, 0.0, 0
    first = True
    while int(state.step) < steps:
        t0 = int(state.step)
        start = time.perf_counter()
        state, losses = call(state, indices[t0:t0 + spc], genomes[t0:t0 + spc])
        loss = float(jnp.sum(losses)) / max(1, min(spc, steps - t0))
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"the one-shot supernet's loss became {loss} in steps {t0}..{t0 + spc}; lower "
                f"train.learning_rate (now {config.learning_rate})")
        if not first:
            timed += time.perf_counter() - start
            timed_steps += min(spc, steps - t0)
        first = False
        if save is not None and (int(state.step) - last_saved >= every or
                                 int(state.step) >= steps):
            save(jax.tree.map(np.asarray, state))
            last_saved = int(state.step)
    mean_loss = float("nan") if losses is None else float(jnp.mean(losses))
    return SupernetResult(jax.tree.map(np.asarray, state.params), steps, resumed,
                          time.perf_counter() - began,
                          timed / timed_steps if timed_steps else float("nan"), mean_loss)


def score_population(encoding: Any, params: Any, genomes: np.ndarray, dataset: Any,
                     eval_batch_size: int, splits: tuple[str, ...] = ("val",),
                     cache: ProgramCache | None = None) -> dict[str, np.ndarray]:
    """Metrics of every genome with the supernet's weights (no training of its own).

    One compiled program per encoding, batch size, number of classes and shapes, reused by every
    generation (the parameters and the data are its arguments, not constants): ``lax.map`` over
    the genomes (one architecture at a time, so the single path's switches run one branch),
    batches of ``eval_batch_size`` scanned inside (one batch's activations live at a time).

    Args:
        cache: where the compiled scorer is kept between calls (the experiment's
            :class:`~evonas.train.ProgramCache`); None compiles it for this call.

    Returns:
        ``{split_metric: float32[P]}`` for each split of ``splits`` (``val``, ``test``):
        ``acc``, ``loss``, ``precision``, ``recall``, ``f1``.
    """
    scorer = _scorer(cache or ProgramCache(), encoding, int(eval_batch_size),
                     int(dataset.num_classes))
    genomes = jnp.asarray(genomes, jnp.int32)
    out: dict[str, np.ndarray] = {}
    for split in splits:
        x = jnp.asarray(getattr(dataset, f"x_{split}"))
        y = jnp.asarray(getattr(dataset, f"y_{split}"))
        loss_sum, confusion = scorer(params, genomes, x, y)
        for name, values in confusion_metrics(np.asarray(confusion, np.float64),
                                              np.asarray(loss_sum, np.float64)).items():
            out[f"{split}_{name}"] = np.asarray(values, np.float32)
    return out


def _scorer(cache: ProgramCache, encoding: Any, eval_batch_size: int, num_classes: int
            ) -> Callable[..., Any]:
    """``jit((params, genomes, x, y) -> (loss sums [P], confusions [P, C, C]))``; kept in
    ``cache``, so a search compiles it once per population and split shape, not once per
    generation."""
    forward = path_forward(encoding)
    c = num_classes

    def score(params: Any, genomes: jax.Array, x: jax.Array, y: jax.Array) -> Any:
        batches = in_batches((x, y), eval_batch_size)

        def one(genome: jax.Array) -> tuple[jax.Array, jax.Array]:
            def batch(carry: Any, xyw: Any) -> Any:  # one batch live at a time
                xb, yb, wb = xyw
                logits = forward(params, genome, xb)
                losses = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
                pred = jax.nn.one_hot(jnp.argmax(logits, -1), c)
                true = jax.nn.one_hot(yb, c) * wb[:, None]
                return (carry[0] + jnp.sum(losses * wb), carry[1] + true.T @ pred), None

            zeros = (jnp.zeros((), jnp.float32), jnp.zeros((c, c), jnp.float32))
            return jax.lax.scan(batch, zeros, batches)[0]

        return jax.lax.map(one, genomes)

    return cache.program(("oneshot_scorer", encoding, eval_batch_size, num_classes),
                         lambda: jax.jit(score))
