"""Exported models: ``architecture.json`` plus orbax parameters, written and read back.

An exported model's directory (``best/``, ``front/<id>/``, ``budgets/<metric>-<bound>/``) holds

- ``architecture.json``: the encoding's name and options, the genome, its description, costs
  and scores: everything needed to rebuild the module with ``encoding.build``;
- ``params/``: its variables (orbax), absent for a tabular run (nothing was trained).

:func:`load_model` rebuilds the standalone Flax module from the registry and restores its
parameters.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from evonas.data.preprocessing import with_preprocessing
from evonas.genomes.registry import get_encoding
from evonas.store.atomic import atomic_write_text, check_not_link, read_small_text, safe_dir
from evonas.store.checkpoints import this_process_only
from evonas.store.layout import ARCHITECTURE, BEST, PARAMS


def _checkpointer() -> ocp.Checkpointer:
    """orbax, synchronously and for this process alone: a save that fails raises at once (no
    thread is left waiting out orbax's timeouts), and no other process is waited for."""
    return ocp.Checkpointer(ocp.StandardCheckpointHandler(),
                            multiprocessing_options=this_process_only())


def _probe(directory: Path) -> None:
    """A directory that can't take a file (permissions, a read-only or immutable directory, a
    full disk) fails here, in one line, before orbax starts writing into it."""
    probe = directory / f".probe.{secrets.token_hex(8)}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                     0o644)
        try:
            os.write(fd, b"\0" * 65536)
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as e:
        raise OSError(e.errno, e.strerror, os.path.realpath(directory)) from None


def _errno_of(err: Exception) -> int:
    """The operating system's error number in a tensorstore error (0 when it names none)."""
    found = re.search(r"os_error_code='?(\d+)", str(err))
    return int(found.group(1)) if found else 0


def _reason(err: Exception) -> str:
    """A failed write's reason in a few words: the OS error when tensorstore names one."""
    code = _errno_of(err)
    if code:
        return os.strerror(code)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:160] if text else ''}"


def save_params(directory: Path, params: Any) -> None:
    """Saves ``params`` to ``directory/params`` through a temporary directory of an
    unpredictable name and a rename; a link at ``params`` is refused, never followed."""
    target = directory / PARAMS
    tmp = directory / f".{PARAMS}.{secrets.token_hex(8)}.tmp"
    check_not_link(target)
    _probe(directory)
    try:
        with _checkpointer() as checkpointer:
            checkpointer.save(tmp.absolute(),
                              args=ocp.args.StandardSave(jax.tree.map(np.asarray, params)))
    except Exception as err:  # orbax and tensorstore raise many types for a failed write
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError):
            raise
        raise OSError(_errno_of(err), f"can't write the parameters: {_reason(err)}",
                      os.path.realpath(directory)) from None
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def export_model(directory: str | os.PathLike, encoding: str, encoding_options: Mapping[str, Any],
                 row: Mapping[str, Any], params: Any = None,
                 extra: Mapping[str, Any] | None = None,
                 root: str | os.PathLike | None = None) -> None:
    """Writes one architecture as ``directory/architecture.json`` (and ``params/``).

    Args:
        directory: where to write (created).
        encoding: the encoding's registered name.
        encoding_options: its resolved options (input shape and classes included).
        row: the architecture's history row (genome, description, params, flops, metrics, id,
            fitness).
        params: its trained variables, or None (a tabular run: no parameters to export).
        extra: more fields for ``architecture.json`` (objective, test accuracy, dataset, the
            budget it was chosen for).
        root: the run directory it is in (default ``directory``'s parent): no write follows a
            link below it.
    """
    directory = Path(directory)
    safe_dir(directory, root if root is not None else directory.parent)
    if params is not None:
        save_params(directory, params)
    architecture = {
        "encoding": encoding,
        "encoding_options": json.loads(json.dumps(dict(encoding_options), default=list)),
        "genome": row["genome"],
        "description": row["description"],
        "cost": {"params": row["params"], "flops": row["flops"]},
        "metrics": row.get("metrics") or {},
        "history_id": row["id"],
        "fitness": row["fitness"],
        **(extra or {}),
    }
    atomic_write_text(directory / ARCHITECTURE, json.dumps(architecture, indent=2) + "\n",
                      root if root is not None else directory.parent)


def model_dir(path: str | os.PathLike) -> Path:
    """The exported model's directory: ``path`` itself, or ``path/best`` of a run directory.

    Raises:
        ValueError: neither holds an exported model.
    """
    path = Path(path)
    best = path if (path / ARCHITECTURE).is_file() else path / BEST
    if not (best / ARCHITECTURE).is_file():
        raise ValueError(
            f"{os.fspath(path)} holds no exported model (no {BEST}/{ARCHITECTURE}); pass a run "
            "directory whose run finished with final.retrain.top_k >= 1"
        )
    return best


def load_model(run_dir: str | os.PathLike, preprocess: bool = True
               ) -> tuple[Any, Any, dict[str, Any]]:
    """Rebuilds an exported architecture with ``encoding.build`` and loads its parameters.

    Args:
        run_dir: a run directory (its ``best/``), or any exported model's directory
            (``front/<id>``, ``budgets/params-20000``).
        preprocess: the module takes raw inputs (what ``evonas.load_dataset(name,
            normalize=False)`` gives, or your own data as you gave it) and applies the
            preprocessing its run trained with (``info["preprocessing"]``: the train split's
            per-channel mean and std). False: the bare module, which expects inputs already
            standardised, as the run's ``Dataset`` holds them.

    Returns:
        ``(module, variables, info)``: ``module.apply(variables, x)`` gives logits; ``info`` is
        ``architecture.json`` (genome, description, cost, fitness, test accuracy,
        preprocessing).

    Raises:
        ValueError: the directory holds no exported model, or one without parameters.
    """
    best = model_dir(run_dir)
    info = json.loads(read_small_text(best / ARCHITECTURE))
    if not (best / PARAMS).is_dir():
        raise ValueError(f"{best} holds an architecture but no {PARAMS}/ (a tabular run trains "
                         "nothing); rebuild it with evonas.get_encoding(info['encoding'])")
    options = dict(info["encoding_options"])
    if "input_shape" in options:
        options["input_shape"] = tuple(options["input_shape"])
    try:
        encoding = get_encoding(info["encoding"], **options)
    except ValueError as err:
        if not str(err).startswith("unknown encoding"):
            raise
        raise ValueError(f"{err} (an encoding from a plug-in must be registered first: import "
                         "the plug-in, or pass --plugin)") from None
    module, _ = encoding.build(np.asarray(info["genome"], np.int32))
    example = np.zeros((1, *input_shape_of(info, encoding)), np.float32)
    abstract = jax.eval_shape(module.init, jax.random.key(0), example)
    check_not_link(best / PARAMS)
    with _checkpointer() as checkpointer:
        try:
            stored = checkpointer.metadata((best / PARAMS).absolute()).item_metadata
        except Exception as err:  # orbax raises many types for damaged files
            raise ValueError(f"the parameters in {best / PARAMS} can't be read: "
                             f"{type(err).__name__}: {str(err).splitlines()[0][:200]}") from None
        _check_shapes(best / PARAMS, abstract, stored)
        variables = checkpointer.restore((best / PARAMS).absolute(),
                                         args=ocp.args.StandardRestore(abstract))
    if preprocess:
        if "preprocessing" not in info:
            warnings.warn(f"{best} was exported before evonas recorded preprocessing: its "
                          "module expects inputs standardised as in its run", stacklevel=2)
        module = with_preprocessing(module, info.get("preprocessing"),
                                    f"{best / ARCHITECTURE}")
    return module, variables, info


def input_shape_of(info: Mapping[str, Any], encoding: Any = None) -> tuple[int, ...]:
    """The input shape of one example (no batch axis) of an exported model, from its
    ``architecture.json`` (``info``), else the encoding's ``input_shape``."""
    shape = dict(info.get("encoding_options") or {}).get("input_shape")
    if shape is None and encoding is None:
        options = dict(info["encoding_options"])
        encoding = get_encoding(info["encoding"], **options)
    if shape is None:
        shape = getattr(encoding, "input_shape", ())
    return tuple(int(d) for d in shape)


def _check_shapes(where: Path, expected: Any, stored: Any) -> None:
    """The stored parameter tree must be the architecture's: same leaves, shapes and dtypes.

    Raises:
        ValueError: naming the first leaf that differs (or is missing or extra).
    """
    tree = getattr(stored, "tree", stored)
    want = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(expected)}
    have = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(tree)}
    for key in sorted(set(want) | set(have)):
        if key not in have:
            raise ValueError(f"the parameters in {where} lack {key}, which the architecture in "
                             f"{ARCHITECTURE} has ({tuple(want[key].shape)})")
        if key not in want:
            raise ValueError(f"the parameters in {where} hold {key}, which the architecture in "
                             f"{ARCHITECTURE} does not have")
        w, h = want[key], have[key]
        if tuple(w.shape) != tuple(h.shape) or np.dtype(w.dtype) != np.dtype(h.dtype):
            raise ValueError(f"the parameters in {where} hold {key} as {np.dtype(h.dtype)}"
                             f"{list(h.shape)}, but the architecture in {ARCHITECTURE} needs "
                             f"{np.dtype(w.dtype)}{list(w.shape)}: they are not this model's")
