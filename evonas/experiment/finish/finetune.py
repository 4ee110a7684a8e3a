"""Fine-tuning a found network on new data (``evonas finetune``), in four modes and a baseline.

A network exported by a run (``best/``, or any exported model inside it) is trained further on
another dataset, through any door (``--data`` a file, a folder or a dataset name; a ``Dataset``
from Python). The modes differ in which parameters train:

* ``full``: every parameter;
* ``last``: the last ``blocks`` blocks with parameters and the head (the blocks in the order the
  network creates them: its forward order);
* ``head``: the head alone, trained through the frozen network with the image pipeline;
* ``probe``: the head alone, fitted as a linear probe on features computed once (no
  augmentation, no pass through the network per step);
* ``scratch``: the baseline: the same architecture from a fresh initialisation, every parameter,
  the same steps (what fine-tuning must beat).

The head is found without a hook: it is the parameters whose shapes change with the number of
classes (the network built for ``K`` and for ``K + 1`` classes, compared leaf by leaf). It is
re-initialised when the new data's classes differ from the network's (another task) and kept when
they are the same (the same task on shifted data). ``head`` and ``probe`` need such a head (and
``probe`` a linear one: one ``[features, classes]`` kernel and a bias; checked on data);
a network without one is refused in one line.

Learning rates: the head trains at the run's ``train.learning_rate`` (or ``learning_rate``), the
pretrained parameters at ``body_lr_scale`` times it (0.1: discriminative fine-tuning, as ULMFiT
and the Keras transfer-learning guide do), frozen ones not at all; the run's optimiser, schedule,
batch size, weight decay and image pipeline otherwise. The data is standardised with its own
train split's statistics, exported with the model.

``final.finetune`` runs it as the final stage's last step (:class:`Finetune`), on the network
the run deployed (``best``, ``distilled`` or ``pruned``), after the export.

The result goes to ``<run>/finetuned/<mode>/`` (``last2`` for ``last`` with 2 blocks): an
exported model (``architecture.json`` with the new class names, ``params/``) and
``finetune.json`` (written last).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from evonas import streams
from evonas.data import Dataset
from evonas.experiment.config import (
    FINETUNE_MODES,
    DatasetConfig,
    ExperimentConfig,
    FinetuneSettings,
)
from evonas.experiment.finish.context import Finish, Retrainer, trained_test_accuracy
from evonas.experiment.loading import run_config
from evonas.genomes import get_encoding
from evonas.store import RunDir, load_model, read_json
from evonas.store.layout import ARCHITECTURE, FINETUNE_FILE, RunPaths
from evonas.store.models import input_shape_of
from evonas.store.run_dir import RunLock
from evonas.train import cross_entropy, train_module
from evonas.train.prune import count_params

MODES = FINETUNE_MODES
"""The fine-tuning modes; ``scratch`` is the baseline the others are measured against."""

LeafPath = tuple[str, ...]


# -- the network's parts -------------------------------------------------------------------


def _flat(tree: Any) -> dict[LeafPath, Any]:
    return traverse_util.flatten_dict(_plain(tree))


def _plain(tree: Any) -> Any:
    return {k: _plain(v) for k, v in tree.items()} if isinstance(tree, Mapping) else tree


def head_paths(name: str, options: Mapping[str, Any], genome: Any) -> set[LeafPath]:
    """The parameters of ``genome``'s network whose shapes depend on the number of classes
    (its head): the network built for ``K`` and ``K + 1`` classes, compared leaf by leaf."""
    shapes = []
    for k in (int(options["num_classes"]), int(options["num_classes"]) + 1):
        encoding = get_encoding(name, **{**options, "num_classes": k})
        module, _ = encoding.build(np.asarray(genome, np.int32))
        example = np.zeros((1, *input_shape_of({"encoding_options": options}, encoding)),
                           np.float32)
        shapes.append({p: a.shape for p, a in _flat(
            jax.eval_shape(module.init, jax.random.key(0), example)).items()})
    return {p for p, s in shapes[0].items() if shapes[1].get(p) != s}


def blocks_in_order(variables: Any, head: set[LeafPath]) -> list[str]:
    """The network's blocks with parameters in the order it creates them (its forward order):
    the top-level names of ``params`` outside the head (``stem``, ``layer_0``, ...), from the
    variables of an eager ``init`` (which keeps creation order; a traced one comes back
    sorted)."""
    heads = {p[1] for p in head if len(p) > 1}
    return [name for name in variables["params"] if name not in heads]


def trainable_labels(variables: Any, head: set[LeafPath], blocks: list[str], mode: str,
                     last: int) -> Any:
    """Per leaf: ``"head"`` (trains at the head's rate), ``"body"`` (the pretrained rate) or
    ``"frozen"``."""
    if mode == "last" and last > len(blocks):
        raise ValueError(f"finetune blocks={last}: this network has {len(blocks)} blocks with "
                         f"parameters ({', '.join(blocks)}); choose 1..{len(blocks)}")
    training = {"full": set(blocks), "scratch": set(blocks),
                "last": set(blocks[len(blocks) - last:])}.get(mode, set())
    flat = _flat(variables)
    labels = {p: "head" if p in head or mode == "scratch" else
              "body" if len(p) > 1 and p[1] in training else "frozen" for p in flat}
    return traverse_util.unflatten_dict(labels)


def finetune_optimizer(base: Any, labels: Any, learning_rate: float, scale: float, steps: int
                       ) -> optax.GradientTransformation:
    """The run's optimiser at the head's rate, at ``scale`` times it for the pretrained
    parameters, and nothing for the frozen ones."""
    def at(lr: float) -> optax.GradientTransformation:
        return dataclasses.replace(base, steps=steps, learning_rate=lr).program_options(
        ).optimizer_fn()

    return optax.multi_transform({"head": at(learning_rate), "body": at(learning_rate * scale),
                                  "frozen": optax.set_to_zero()}, labels)


# -- the probe -----------------------------------------------------------------------------


def _head_leaves(head: set[LeafPath], variables: Any, who: str = "finetune mode=probe"
                 ) -> tuple[LeafPath, LeafPath | None]:
    """The head's kernel ``[*D, K]`` (``[features, K]``, or ``[positions, channels, K]`` for a
    flattening head) and bias ``[K]`` paths (bias None: a kernel alone).

    Raises:
        ValueError: a head that is not one kernel and at most one 1-D bias (``who`` needs one).
    """
    flat = _flat(variables)
    kernels = [p for p in head if np.ndim(flat[p]) >= 2]
    biases = [p for p in head if np.ndim(flat[p]) == 1]
    if len(kernels) != 1 or len(biases) > 1 or len(kernels) + len(biases) != len(head):
        raise ValueError(f"{who} needs a linear head (one [features, classes] kernel and a "
                         f"bias); this network's head is {sorted(head)}; {_instead(who)}")
    return kernels[0], (biases[0] if biases else None)


def features_fn(name: str, options: Mapping[str, Any], genome: Any, variables: Any,
                head: set[LeafPath]) -> Any:
    """``x -> features``: the network built with an identity head (as many classes as the
    head has inputs), the other parameters ``variables``'."""
    kernel, bias = _head_leaves(head, variables)
    inputs = tuple(np.shape(_flat(variables)[kernel])[:-1])
    width = int(np.prod(inputs))
    encoding = get_encoding(name, **{**options, "num_classes": width})
    module, _ = encoding.build(np.asarray(genome, np.int32))
    flat = dict(_flat(variables))
    flat[kernel] = jnp.eye(width, dtype=jnp.float32).reshape(*inputs, width)
    if bias is not None:
        flat[bias] = jnp.zeros((width,), jnp.float32)
    identity = traverse_util.unflatten_dict(flat)
    apply = jax.jit(lambda x: module.apply(identity, x))
    return lambda x: np.concatenate([np.asarray(apply(jnp.asarray(x[i:i + 1000])))
                                     for i in range(0, len(x), 1000)])


def _instead(who: str) -> str:
    return "use head_init=fresh" if "head_init" in who else "use mode=head"


def check_linear(features: Any, module: Any, variables: Any, head: set[LeafPath],
                 x: np.ndarray, who: str = "finetune mode=probe") -> None:
    """The network's logits must be its features times the head's kernel plus its bias.

    Raises:
        ValueError: they are not (the head is not a plain linear layer): use mode=head.
    """
    kernel, bias = _head_leaves(head, variables, who)
    flat = _flat(variables)
    want = np.asarray(module.apply(variables, jnp.asarray(x)))
    matrix = np.asarray(flat[kernel]).reshape(-1, np.shape(flat[kernel])[-1])
    got = features(x) @ matrix + (0.0 if bias is None else
                                                    np.asarray(flat[bias]))
    if not np.allclose(got, want, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(want).max()))):
        raise ValueError(f"{who} needs a linear head (logits = features @ kernel + bias); "
                         f"this network's output is not; {_instead(who)}")


def fit_probe(key: jax.Array, f: np.ndarray, y: np.ndarray, classes: int, config: Any,
              steps: int, learning_rate: float) -> tuple[jax.Array, jax.Array]:
    """A linear classifier on fixed features: ``steps`` minibatch steps of the run's optimiser
    (features standardised inside, folded back into the returned ``(kernel, bias)``)."""
    f = jnp.asarray(f, jnp.float32)
    mean, std = f.mean(0), f.std(0) + 1e-6
    z = (f - mean) / std
    options = dataclasses.replace(config, steps=steps, learning_rate=learning_rate,
                                  augment=None).program_options()
    optimizer = options.optimizer_fn()
    params = {"w": jnp.zeros((f.shape[1], classes)), "b": jnp.zeros((classes,))}
    batch = min(config.batch_size, len(y))
    y = jnp.asarray(y)

    def loss(p, idx):
        logits = z[idx] @ p["w"] + p["b"]
        return cross_entropy(logits, y[idx], options.label_smoothing)

    @jax.jit
    def run(params, key):
        def step(carry, k):
            p, s = carry
            idx = jax.random.choice(k, len(y), (batch,), replace=False)
            grads = jax.grad(loss)(p, idx)
            updates, s = optimizer.update(grads, s, p)
            return (optax.apply_updates(p, updates), s), None

        state = (params, optimizer.init(params))
        return jax.lax.scan(step, state, jax.random.split(key, steps))[0][0]

    p = run(params, key)
    w = p["w"] / std[:, None]
    return w, p["b"] - mean @ w


# -- the step ------------------------------------------------------------------------------


def _data_config(config: ExperimentConfig, data: Any) -> tuple[ExperimentConfig, Dataset | None]:
    """The run's experiment with its dataset section replaced by ``data`` (a path, a dataset
    name, a mapping of dataset fields, or a ``Dataset``): ``(config, given dataset)``."""
    keep = {"val_fraction": config.dataset.val_fraction, "seed": config.dataset.seed}
    if isinstance(data, Dataset):
        return dataclasses.replace(config, dataset=DatasetConfig(name="arrays", **keep)), data
    if isinstance(data, Mapping):
        fields = {**keep, **dict(data)}
    elif isinstance(data, (str, os.PathLike)):
        text = os.fspath(data)
        looks_like_path = not text.startswith("tfds:") and (
            os.sep in text or "/" in text or text.lower().endswith((".npz", ".csv")))
        if looks_like_path or os.path.exists(os.path.expanduser(text)):
            from evonas.data.doors import door_of

            fields = {**keep, "name": door_of(text), "path": text}
        else:
            fields = {**keep, "name": text}
    else:
        raise ValueError(f"finetune data must be a path, a dataset name, a mapping of dataset "
                         f"fields or an evonas.Dataset; got {type(data).__name__}")
    try:
        section = DatasetConfig(**fields)
    except TypeError as err:
        raise ValueError(f"finetune data: {err}") from None
    return dataclasses.replace(config, dataset=section), None


def check_final_data(config: ExperimentConfig) -> None:
    """``final.finetune.data`` opens a door (an existing path of a kind evonas reads, or a
    registered dataset name), checked before a run starts so that a typo fails in one line
    and not after the search; the data itself is read when the step runs.

    Raises:
        ValueError: naming ``final.finetune.data``, the value and what is allowed.
    """
    chosen = config.final.finetune
    if chosen is None:
        return
    try:
        _data_config(config, chosen.data)[0].check_names()
    except ValueError as err:
        raise ValueError(f"final.finetune.data: {str(err).replace('--data ', '')}") from None


def finetune_model(config: ExperimentConfig, root: Path, info: Mapping[str, Any],
                   variables: Any, data: Any, settings: FinetuneSettings,
                   out: Path) -> dict[str, Any]:
    """Fine-tunes one exported network (``info``: its ``architecture.json``) on ``data`` and
    exports it to ``out`` (``finetune.json`` written last); returns ``finetune.json``.

    Raises:
        ValueError: data that can't be loaded, of another input shape, or a mode this network
            cannot take (one line each; nothing is written).
    """
    from evonas.experiment.components import check_data_memory, load_data

    config, given = _data_config(config, data)
    dataset = load_data(config, given)
    check_data_memory(config, dataset)
    name, old = info["encoding"], dict(info["encoding_options"])
    if "input_shape" in old:
        old["input_shape"] = tuple(old["input_shape"])
    shape = tuple(int(d) for d in dataset.x_train.shape[1:])
    wanted = input_shape_of(info)
    if wanted and shape != wanted:
        raise ValueError(f"finetune data: examples of shape {list(shape)}, but the network "
                         f"takes {list(wanted)}; resize them (dataset.image_size) or search "
                         "this data anew")
    classes = int(dataset.num_classes)
    options = {**old, "num_classes": classes}
    genome = np.asarray(info["genome"], np.int32)
    head = head_paths(name, old, genome)
    names = list(dataset.class_names) if dataset.class_names is not None else [
        str(i) for i in range(classes)]
    new_task = names != list(info.get("class_names") or []) or classes != old["num_classes"]
    if not head and (new_task or settings.mode in ("head", "probe")):
        why = (f"mode={settings.mode} trains a separable head" if not new_task else
               "the data has other classes than the network's, so it needs a new head")
        raise ValueError(f"finetune: {why}, but no parameter of this {name} network depends "
                         "on the number of classes")
    # the probe's fit: the result (probe), or a new head's start (LP-FT); strict where asked
    # for by name, else (head_init=auto) only where the head turns out linear
    probing = settings.mode == "probe" or (
        new_task and settings.mode in ("full", "last", "head") and settings.head_init != "fresh")
    strict = settings.mode == "probe" or settings.head_init == "probe"
    who = "finetune mode=probe" if settings.mode == "probe" else "finetune head_init=probe"
    if probing and strict:
        _head_leaves(head, variables, who)  # refused before anything trains
    encoding = get_encoding(name, **options)
    module, _ = encoding.build(genome)
    example = np.zeros((1, *shape), np.float32)
    seed = config.search.seed if settings.seed is None else settings.seed
    key = streams.within_final(streams.stream(seed, "final"), "finetune")
    init_key, train_key, probe_key = jax.random.split(key, 3)
    initial = module.init(init_key, example)  # eager: in creation order
    blocks = blocks_in_order(initial, head)
    fresh, pretrained = _flat(initial), _flat(variables)
    start = traverse_util.unflatten_dict(fresh if settings.mode == "scratch" else {
        p: (a if p in head and new_task else pretrained[p]) for p, a in fresh.items()})
    labels = trainable_labels(start, head, blocks, settings.mode, settings.blocks)
    # a quarter of the network's own retraining (its steps under final.retrain.time_budget)
    steps = settings.steps or max(1, int(info.get("steps") or config.final.retrain.steps) // 4)
    lr = float(settings.learning_rate or config.train.learning_rate)
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    began = time.perf_counter()
    if probing:
        old_module, _ = get_encoding(name, **old).build(genome)
        try:
            features = features_fn(name, old, genome, variables, head)
            check_linear(features, old_module, variables, head, x[:16], who)
        except ValueError:
            if strict:
                raise
            probing = False  # auto: a head that is not linear starts fresh
    if probing:
        kernel, bias = _head_leaves(head, start, who)
        w, b = fit_probe(probe_key, features(x), y, classes, config.train, steps, lr)
        flat = dict(_flat(start))
        flat[kernel] = w.reshape(flat[kernel].shape).astype(flat[kernel].dtype)
        if bias is not None:
            flat[bias] = b.astype(flat[bias].dtype)
        start = traverse_util.unflatten_dict(flat)
    if settings.mode == "probe":
        tuned = start
    else:
        optimizer = finetune_optimizer(config.train, labels, lr, settings.body_lr_scale, steps)
        tuned = train_module(train_key, module, x, y, config.train, steps, init=start,
                             optimizer=optimizer)
    seconds = time.perf_counter() - began
    finish = Finish(config, root, [], Retrainer(config, encoding, dataset), options)
    test_acc = trained_test_accuracy(finish, module, tuned)
    flat_labels = _flat(labels)
    trainable = sum(int(np.size(a)) for p, a in _flat(tuned).items()
                    if flat_labels[p] != "frozen")
    summary = {
        "mode": settings.mode, "blocks": settings.blocks if settings.mode == "last" else None,
        "steps": int(steps), "learning_rate": lr,
        "body_learning_rate": None if settings.mode in ("head", "probe") else (
            lr if settings.mode == "scratch" else lr * settings.body_lr_scale),
        "seed": int(seed), "source": info.get("source_dir"), "history_id": info.get("history_id"),
        "data": {"name": config.dataset.name, "path": config.dataset.path,
                 "digest": dataset.digest, "classes": names},
        "new_head": bool(new_task and settings.mode != "scratch"),
        "head_init": ("fresh" if settings.mode == "scratch" else "probe" if probing else
                      "fresh" if new_task else "pretrained"),
        "probe_steps": int(steps) if probing else 0,
        "blocks_in_network": blocks, "params": count_params(tuned),
        "trainable_params": trainable, "test_acc": float(test_acc),
        "train_seconds": round(seconds, 3),
    }
    cost = encoding.cost(genome)
    row = {"genome": [int(g) for g in genome], "description": encoding.describe(genome),
           "params": float(cost["params"]), "flops": float(cost["flops"]), "metrics": {},
           "id": info.get("history_id"), "fitness": None}
    finish.export(out, row, tuned, {"test_acc": float(test_acc)},
                  {"finetuned_from": info.get("source_dir"), "finetune_mode": settings.label,
                   "finetune_steps": int(steps)})
    finish.write_json(out / FINETUNE_FILE, summary)
    return summary


class Finetune:
    """``final.finetune``: the deployed network fine-tuned on other data, after the export;
    done once its ``finetune.json`` exists (a resumed run fine-tunes only then)."""

    name = "finetune"

    def wanted(self, finish: Finish) -> bool:
        chosen = finish.config.final.finetune
        return (chosen is not None and finish.scorer.trains
                and (finish.root / chosen.source / ARCHITECTURE).is_file())

    def done(self, finish: Finish) -> bool:
        if finish.config.final.finetune is None:
            return True  # nothing asked for
        return (finish.paths.finetuned / finish.config.final.finetune.label
                / FINETUNE_FILE).is_file()

    def run(self, finish: Finish) -> None:
        chosen = finish.config.final.finetune
        finish.progress(f"fine-tuning {chosen.source} on {chosen.data} ({chosen.mode})")
        _, variables, info = load_model(finish.root / chosen.source, preprocess=False)
        info = {**info, "source_dir": chosen.source}
        finetune_model(finish.config, finish.root, info, variables, chosen.data, chosen,
                       finish.paths.finetuned / chosen.label)


def finetune_run(run_dir: str | os.PathLike, data: Any, mode: str = "full", blocks: int = 1,
                 steps: int | None = None, learning_rate: float | None = None,
                 body_lr_scale: float = 0.1, seed: int | None = None,
                 source: str = "best", head_init: str = "auto") -> dict[str, Any]:
    """``evonas finetune DIR --data ...``: fine-tunes a finished run's exported network on new
    data and exports it to ``DIR/finetuned/<mode>/``.

    Args:
        run_dir: a finished training run.
        data: the new data: a path (an ``.npz``, a ``.csv``, a folder), a dataset name
            (``fashion_mnist``, ``tfds:...``), a mapping of ``dataset`` fields, or a
            ``Dataset`` (``evonas.Dataset.from_arrays``).
        mode, blocks, steps, learning_rate, body_lr_scale, seed, head_init:
            :class:`~evonas.experiment.config.FinetuneSettings`.
        source: the exported model inside the run to start from: ``best`` (default),
            ``distilled``, ``pruned``, or a path relative to the run (``front/12``,
            ``finetuned/head``).

    Returns:
        The contents of ``finetune.json``: mode, steps, learning rates, test accuracy on the new
        data's test split, trainable and total parameters, the data's classes and digest.

    Raises:
        ValueError: not a finished training run, no such exported model, data of another
            input shape, or a setting or mode the network cannot take (one line each; nothing
            is written).
    """
    chosen = FinetuneSettings(mode=mode, blocks=blocks, steps=steps,
                              learning_rate=learning_rate, body_lr_scale=body_lr_scale,
                              head_init=head_init, seed=seed)
    run = RunDir(run_dir, readonly=True)
    config = run_config(run)
    if config.evaluator.tabular:
        raise ValueError(f"{run.path} is a tabular run: it trained no network to fine-tune")
    root = Path(run.path).resolve()
    directory = (root / source).resolve()
    if root not in directory.parents or not (directory / ARCHITECTURE).is_file():
        raise ValueError(f"{run.path} has no exported model at {source!r} to fine-tune "
                         f"({directory / ARCHITECTURE} is missing); choose best, distilled, "
                         "pruned, or the path of an exported model inside the run")
    lock = RunLock(run.path)  # finetuned/ is written into the run directory: own it meanwhile
    try:
        _, variables, info = load_model(directory, preprocess=False)
        info = {**info, "source_dir": str(directory.relative_to(root))}
        out = RunPaths(run.path).finetuned / chosen.label
        return finetune_model(config, Path(run.path), info, variables, data, chosen, out)
    finally:
        lock.release()


def read_finetuned(run_dir: str | os.PathLike, label: str) -> dict[str, Any] | None:
    """``finetuned/<label>/finetune.json`` of a run, or None."""
    return read_json(RunPaths(run_dir).finetuned / label / FINETUNE_FILE)
