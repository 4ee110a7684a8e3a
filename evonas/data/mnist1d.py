"""MNIST-1D, generated offline and cached as ``.npz``.

Greydanus & Kobak, "Scaling down deep learning with MNIST-1D" (ICML 2024). The package's
``get_dataset`` downloads a pickle; here the same data is generated with ``make_dataset`` from the
default arguments (4000 train and 1000 test sequences of length 40) and cached under
``$EVONAS_CACHE_DIR`` or ``~/.cache/evonas``, so only the first load pays the ~2 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path

import numpy as np

from evonas.data.raw import RawData

CACHE_ENV = "EVONAS_CACHE_DIR"
_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def cache_dir() -> Path:
    """The evonas cache directory: ``$EVONAS_CACHE_DIR`` or ``~/.cache/evonas``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "evonas")


def _generation_args():
    try:
        from mnist1d.data import get_dataset_args
    except ImportError as err:
        raise ImportError(
            "the 'mnist1d' dataset needs the mnist1d package; install it with `pip install mnist1d`"
        ) from err
    return get_dataset_args()


def _generate(args) -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset

    # make_dataset reseeds the global `random` and `np.random` generators: restore them so
    # loading data never changes the random streams of the caller.
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002
    return {
        "x_train": np.asarray(data["x"], np.float32),
        "y_train": np.asarray(data["y"], np.int32),
        "x_test": np.asarray(data["x_test"], np.float32),
        "y_test": np.asarray(data["y_test"], np.int32),
    }


def _atomic_save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` to ``path`` so that readers see either no file or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_mnist1d() -> RawData:
    """MNIST-1D as ``(N, 40, 1)`` float32 sequences (one channel) and int32 labels."""
    args = _generation_args()
    # Key the cache on the generation arguments, so different defaults never share a file.
    spec = {k: v for k, v in vars(args).items() if k != "url"}
    digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir() / f"mnist1d-{digest}.npz"
    arrays = None
    if path.exists():
        try:
            with np.load(path) as f:
                arrays = {k: f[k] for k in _ARRAYS}
        except (OSError, ValueError, KeyError):
            arrays = None  # a damaged cache file is regenerated, not fatal
    if arrays is None:
        arrays = _generate(args)
        _atomic_save(path, arrays)
    return RawData(
        x_train=arrays["x_train"][..., None],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"][..., None],
        y_test=arrays["y_test"],
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        test_note="official MNIST-1D test split (1000 examples)",
    )
