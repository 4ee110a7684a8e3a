"""Export for serving: an exported model as one StableHLO program with its parameters baked in.

``export_serving(path)`` writes ``model.stablehlo`` beside ``architecture.json`` and ``params/``
in an exported model's directory (``best/``, ``front/<id>/``, ``budgets/<...>/``): the bytes of
``jax.export.export(...).serialize()`` of ``x -> logits`` with every parameter a constant of the
program and a symbolic batch dimension, lowered for each platform asked (CPU and CUDA by
default). A process that imports only JAX serves it::

    exported = jax.export.deserialize(open("best/model.stablehlo", "rb").read())
    logits = exported.call(x)  # x: float32[batch, *input_shape], any batch

``serving.json`` beside it says what the program takes and gives (input shape and dtype, the
number of classes, the platforms, the JAX version that wrote it), so a server can check its
input without evonas. Both files are written atomically, refusing links.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from evonas.store.atomic import atomic_write_bytes, atomic_write_text
from evonas.store.layout import SERVING, SERVING_INFO
from evonas.store.models import input_shape_of, load_model, model_dir

PLATFORMS = ("cpu", "cuda", "tpu")
DEFAULT_PLATFORMS = ("cpu", "cuda")


def check_platforms(platforms: Sequence[str]) -> tuple[str, ...]:
    """``platforms`` as a tuple of distinct known names.

    Raises:
        ValueError: an empty list or an unknown name (one line, naming what is allowed).
    """
    chosen = tuple(dict.fromkeys(str(p).strip().lower() for p in platforms))
    unknown = [p for p in chosen if p not in PLATFORMS]
    if not chosen or unknown:
        raise ValueError(f"platforms={list(platforms)!r} is not allowed; choose one or more of "
                         f"{list(PLATFORMS)}")
    return chosen


def serving_function(module: Any, variables: Any):
    """``x -> module.apply(variables, x)`` with the variables closed over (constants once
    exported), in float32."""
    constants = jax.tree.map(jnp.asarray, variables)

    def serve(x: jax.Array) -> jax.Array:
        return module.apply(constants, x).astype(jnp.float32)

    return serve


def export_serving(path: str | os.PathLike, platforms: Sequence[str] = DEFAULT_PLATFORMS,
                   root: str | os.PathLike | None = None) -> Path:
    """Writes ``model.stablehlo`` (and ``serving.json``) into an exported model's directory.

    Args:
        path: a run directory (its ``best/``) or an exported model's directory.
        platforms: the platforms to lower for (any of ``cpu``, ``cuda``, ``tpu``); the program
            runs on each without JAX knowing evonas.
        root: the directory below which no write follows a link (default: the model
            directory's parent, the run directory).

    Returns:
        The path of ``model.stablehlo``.

    Raises:
        ValueError: no exported model with parameters there, or an unknown platform.
    """
    platforms = check_platforms(platforms)
    directory = model_dir(path)
    module, variables, info = load_model(directory)
    shape = input_shape_of(info)
    (batch,) = jax.export.symbolic_shape("batch")
    spec = jax.ShapeDtypeStruct((batch, *shape), jnp.float32)
    exported = jax.export.export(jax.jit(serving_function(module, variables)),
                                 platforms=platforms)(spec)
    root = root if root is not None else directory.parent
    target = directory / SERVING
    atomic_write_bytes(target, bytes(exported.serialize()), root)
    out = exported.out_avals[0]
    meta = {
        "file": SERVING,
        "input_shape": ["batch", *shape],
        "input_dtype": "float32",
        "input": ("raw: the program applies the preprocessing below itself" if info.get(
            "preprocessing") else "as the run trained on it (no preprocessing recorded)"),
        "preprocessing": info.get("preprocessing"),
        "class_names": info.get("class_names"),
        "output_shape": ["batch", *(int(d) for d in out.shape[1:])],
        "output": "logits",
        "platforms": list(exported.platforms),
        "calling_convention_version": exported.calling_convention_version,
        "jax_version": jax.__version__,
        "genome": info.get("genome"),
        "encoding": info.get("encoding"),
    }
    atomic_write_text(directory / SERVING_INFO, json.dumps(meta, indent=2) + "\n", root)
    return target


def load_serving(path: str | os.PathLike):
    """The deserialised program of ``path`` (a ``model.stablehlo`` file, an exported model's
    directory or a run directory): ``load_serving(p).call(x)`` gives logits."""
    path = Path(path)
    if path.is_dir():
        path = model_dir(path) / SERVING
    if not path.is_file():
        raise ValueError(f"no {SERVING} at {path}; write it with `evonas export DIR`")
    return jax.export.deserialize(bytearray(path.read_bytes()))

