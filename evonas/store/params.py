"""``ParamStore``: parameter trees by name, one ``.npz`` file each, in a run directory.

Weight inheritance keeps every trained architecture's parameters here (``weights/``, by genome
key) so a resumed run gives a child exactly the parent it had; the one-shot evaluator keeps its
supernet (``supernet/``). Files are plain arrays (``numpy.load(allow_pickle=False)``: nothing in
them is executed), written atomically and never through a link; a file that does not match the
tree it is read into is refused with one line naming it.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import jax
import numpy as np

from evonas.store.atomic import atomic_write_bytes, check_not_link, safe_dir

_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


class ParamStore:
    """Parameter trees by name under ``directory`` (created on the first save).

    Args:
        directory: where the files go (``<run-dir>/weights``, ...).
        root: the run directory: no write below it follows a link.
    """

    def __init__(self, directory: str | os.PathLike, root: str | os.PathLike):
        self.directory = Path(directory)
        self.root = Path(root)

    def path(self, name: str) -> Path:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"parameter name {name!r} must be 1-128 letters, digits, '_' or '-'")
        return self.directory / f"{name}.npz"

    def __contains__(self, name: str) -> bool:
        return self.path(name).is_file()

    def save(self, name: str, tree: Any) -> None:
        """Writes ``tree`` (a pytree of arrays) as ``name``, atomically."""
        path = self.path(name)
        safe_dir(self.directory, self.root)
        leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
        buffer = io.BytesIO()
        np.savez(buffer, **{jax.tree_util.keystr(p): np.asarray(leaf) for p, leaf in leaves})
        atomic_write_bytes(path, buffer.getvalue(), self.root)

    def save_arrays(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Writes named arrays as ``name``, atomically (as :meth:`load_arrays` gives them)."""
        path = self.path(name)
        safe_dir(self.directory, self.root)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
        atomic_write_bytes(path, buffer.getvalue(), self.root)

    def load_arrays(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays saved as ``name`` by key (``save`` keys them by their path in the tree:
        ``"['params']['stem']['kernel']"``), or None when there is none.

        Raises:
            ValueError: the file is unreadable.
        """
        path = self.path(name)
        if not path.is_file():
            return None
        check_not_link(path)
        try:
            with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as err:
            raise ValueError(f"can't read the parameters {path}: {err}; the file is "
                             "damaged") from None

    def load(self, name: str, like: Any) -> Any | None:
        """The tree saved as ``name``, in the structure of ``like`` (shapes and dtypes
        checked), or None when there is none.

        Raises:
            ValueError: the file is unreadable or holds other keys, shapes or dtypes.
        """
        path = self.path(name)
        arrays = self.load_arrays(name)
        if arrays is None:
            return None
        flat, treedef = jax.tree_util.tree_flatten_with_path(like)
        want = {jax.tree_util.keystr(p): leaf for p, leaf in flat}
        if set(arrays) != set(want):
            raise ValueError(f"the parameters {path} hold {sorted(arrays)[:4]}..., not the "
                             f"{len(want)} leaves of this experiment's network")
        leaves = []
        for key, leaf in want.items():
            got = arrays[key]
            if got.shape != tuple(leaf.shape) or got.dtype != np.dtype(leaf.dtype):
                raise ValueError(f"the parameters {path} have {key} of {got.dtype}{list(got.shape)}"
                                 f"; this experiment's network has {np.dtype(leaf.dtype)}"
                                 f"{list(leaf.shape)}")
            leaves.append(got)
        return jax.tree.unflatten(treedef, leaves)
