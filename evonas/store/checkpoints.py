"""Checkpoints of the search state, one per generation, with orbax; the last few kept.

Each checkpoint is an orbax step directory ``checkpoints/<generation>/`` with three items:
``state`` (the pytree, as arrays), ``extra`` (a JSON dict from the caller: RNG-free bookkeeping
such as the number of history rows or the de-duplication keys it corresponds to) and ``meta``
(the generation and a SHA-256 checksum of the state's bytes). Orbax stores and restores the
state's leaves by their paths (field names), so a state class whose fields moved still restores;
the checksum takes the leaves in the order of their paths (format 2), and a format-1 checkpoint's
(leaves in the order the state flattened when it was written) in the order its tree metadata
recorded them. Orbax writes a step into a temporary
directory and renames it into place once complete, so a killed save leaves no step behind; the
commit marker and the checksum catch a step damaged afterwards, and :meth:`Checkpoints.latest_valid`
falls back to the previous one with a warning.

JAX PRNG keys: orbax stores plain arrays, so typed key leaves (``jax.random.key``) are saved as
their raw bits, ``jax.random.key_data(key)``, and rebuilt on restore with
``jax.random.wrap_key_data(bits, dtype=template_leaf.dtype)``: the template says which leaves are
keys and which PRNG implementation they use. Raw ``uint32`` keys (``jax.random.PRNGKey``) are
ordinary arrays and need nothing special.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from evonas.store.atomic import check_not_link

FORMAT = 2
# Format 1 checksummed the leaves in the state's flattening order (see _checksum).
# Orbax writes this file last into a step directory before renaming it into place.
_COMMIT_MARKER = "commit_success.txt"


class NoCheckpointError(ValueError):
    """A checkpoint directory holds no checkpoint that can be restored."""


class Checkpoint(NamedTuple):
    """A restored checkpoint: the generation it was taken after, the state and the extra dict."""

    generation: int
    state: Any
    extra: dict[str, Any]


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _to_data(state: Any) -> Any:
    """``state`` with every typed PRNG key replaced by its raw bits, as host arrays."""
    return jax.tree.map(
        lambda x: np.asarray(jax.random.key_data(x) if _is_key(x) else x), state
    )


def _abstract_data(template: Any) -> Any:
    """Shapes and dtypes of ``_to_data(template)``; ``template`` may be concrete or abstract."""

    def leaf(x: Any) -> jax.ShapeDtypeStruct:
        if _is_key(x):
            return jax.eval_shape(jax.random.key_data, x)
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct(x.shape, x.dtype)
        x = x if hasattr(x, "dtype") else jnp.asarray(x)
        return jax.ShapeDtypeStruct(np.shape(x), x.dtype)

    return jax.tree.map(leaf, template)


def _path(entries: tuple[Any, ...]) -> tuple[str, ...]:
    """A leaf's path as orbax writes it in its tree metadata: the names and indices, as text."""
    out = []
    for entry in entries:
        for attribute in ("name", "key", "idx"):
            if hasattr(entry, attribute):
                out.append(str(getattr(entry, attribute)))
                break
        else:
            out.append(str(entry))
    return tuple(out)


def _digest(leaves: list[Any]) -> str:
    digest = hashlib.sha256()
    for x in leaves:
        x = np.ascontiguousarray(x)
        digest.update(f"{x.dtype.str}{x.shape}".encode())
        digest.update(x.tobytes())
    return digest.hexdigest()


def _checksum(data: Any, order: list[tuple[str, ...]] | None = None) -> str:
    """SHA-256 of the leaves' dtypes, shapes and bytes, in the order of their paths (``order``:
    a format-1 checkpoint's recorded path order instead)."""
    leaves = {_path(p): x for p, x in jax.tree_util.tree_flatten_with_path(data)[0]}
    if order is None:
        order = sorted(leaves)
    return _digest([leaves[p] for p in order if p in leaves])


def _recorded_order(item: Path) -> list[tuple[str, ...]] | None:
    """The leaf paths of a checkpoint item in the order it recorded them (its orbax tree
    metadata), or None where that can't be read."""
    try:
        recorded = json.loads((item / "_METADATA").read_text())["tree_metadata"]
        return [tuple(ast.literal_eval(k)) for k in recorded]
    except (OSError, ValueError, KeyError, TypeError, SyntaxError):
        return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:200] if text else ''}"


class Checkpoints:
    """The checkpoints of one run: ``save`` after each generation, ``latest_valid`` to resume.

    Args:
        directory: where the step directories live (created on first use).
        keep: how many of the newest checkpoints to keep; older ones are deleted on save.
        shown: the directory as messages name it, when ``directory`` is a path that follows
            the run directory wherever it is moved (``/proc/self/fd/N/checkpoints``).
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 3,
                 shown: str | os.PathLike | None = None):
        if int(keep) < 1:
            raise ValueError(f"keep must be >= 1 checkpoints; got {keep}")
        self.directory = Path(directory)
        self.shown = Path(shown) if shown is not None else self.directory
        self.keep = int(keep)
        self._manager: ocp.CheckpointManager | None = None

    def _show(self, path: Path) -> Path:
        """``path`` below :attr:`directory` as messages name it."""
        try:
            return self.shown / path.relative_to(self.directory)
        except ValueError:
            return path

    @property
    def manager(self) -> ocp.CheckpointManager:
        """The orbax manager, made on first use (making one creates the directory).

        Raises:
            UnsafePathError: the directory holds a symbolic link (orbax would read or write
                through it).
        """
        if self._manager is None:
            if self.directory.is_dir():
                for entry in self.directory.iterdir():
                    check_not_link(entry)
            multi = jax.process_count() > 1
            if multi:  # orbax won't create it when it may not wait for the other processes
                self.directory.mkdir(parents=True, exist_ok=True)
            options = ocp.CheckpointManagerOptions(
                max_to_keep=self.keep,
                # Synchronous: a checkpoint is on disk when save() returns.
                enable_async_checkpointing=False,
                # Half-written steps of a killed save are garbage; clear them on open.
                cleanup_tmp_directories=True,
                create=not multi,
                multiprocessing_options=this_process_only(),
            )
            self._manager = ocp.CheckpointManager(
                self.directory.absolute(), options=options, item_names=("state", "extra", "meta")
            )
        return self._manager

    def close(self) -> None:
        """Releases the orbax manager; saved checkpoints stay."""
        if self._manager is not None:
            self._manager.close()
            self._manager = None

    def generations(self) -> list[int]:
        """The generations that have a checkpoint directory, oldest first (valid or not)."""
        self.manager.reload()
        return sorted(self.manager.all_steps())

    def completed(self) -> list[int]:
        """The generations whose checkpoint was written to the end (orbax's commit marker),
        readable or not."""
        return [g for g in self.generations()
                if (self.directory / str(g) / _COMMIT_MARKER).is_file()]

    def save(self, generation: int, state: Any, extra: dict[str, Any] | None = None) -> None:
        """Saves ``state`` (a pytree of arrays and PRNG keys) and ``extra`` after ``generation``.

        Returns once the checkpoint is complete on disk. Checkpoints at or after ``generation``
        belong to an abandoned future (a resume fell back past a corrupt one): they are moved
        aside to ``superseded-<generation>-<time>``, with a warning, not deleted.

        Args:
            generation: the generation just finished, ``>= 0``.
            state: the pytree to restore later (strategy state, RNG key, counters).
            extra: a JSON-serialisable dict (de-duplication keys, history row count, ...).

        Raises:
            ValueError: a negative generation or an ``extra`` that isn't JSON.
            OSError: the directory can't be written.
        """
        generation = int(generation)
        if generation < 0:
            raise ValueError(f"checkpoint generation must be >= 0; got {generation}")
        try:
            extra = json.loads(json.dumps(dict(extra or {}), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"checkpoint extra must be JSON (numbers, strings, lists, dicts); {e}"
            ) from None
        for stale in [s for s in self.generations() if s >= generation]:
            self._move_aside(stale)
        data = _to_data(state)
        meta = {"format": FORMAT, "generation": generation, "checksum": _checksum(data)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(data),
            extra=ocp.args.JsonSave(extra),
            meta=ocp.args.JsonSave(meta),
        )
        if not self.manager.save(generation, args=args, force=True):
            raise RuntimeError(
                f"orbax declined to save generation {generation} in {self.shown}"
            )
        self.manager.wait_until_finished()

    def _move_aside(self, generation: int) -> None:
        # No underscore in the name: orbax would read "<anything>_<digits>" as a step.
        target = self.directory / f"superseded-{generation}-{time.time_ns()}"
        os.replace(self.directory / str(generation), target)
        warnings.warn(
            f"checkpoint {self.shown / str(generation)} is at or after the generation being "
            f"saved ({generation}); moved it aside to {target.name}",
            stacklevel=3,
        )
        self.manager.reload()

    def restore(self, generation: int, template: Any) -> Checkpoint:
        """Restores the checkpoint of ``generation`` into the structure of ``template``.

        Args:
            generation: a generation listed by :meth:`generations`.
            template: a pytree of the state's structure: concrete arrays or
                ``jax.ShapeDtypeStruct`` (``jax.eval_shape`` of the init function), with typed
                PRNG keys where the state has them.

        Raises:
            ValueError: the checkpoint is half-written, corrupt, or doesn't match ``template``.
        """
        path = self.directory / str(generation)
        shown = self._show(path)
        if not (path / _COMMIT_MARKER).is_file():
            raise ValueError(f"checkpoint {shown} is half-written: it has no {_COMMIT_MARKER}")
        abstract = _abstract_data(template)
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            extra=ocp.args.JsonRestore(),
            meta=ocp.args.JsonRestore(),
        )
        try:
            restored = self.manager.restore(generation, args=args)
        except Exception as e:  # orbax and tensorstore raise many types for damaged files
            raise ValueError(f"checkpoint {shown} can't be read: {_first_line(e)}") from None
        data, meta = restored["state"], restored["meta"] or {}
        for want, got in zip(jax.tree.leaves(abstract), jax.tree.leaves(data)):
            if (want.shape, np.dtype(want.dtype)) != (np.shape(got), np.asarray(got).dtype):
                raise ValueError(
                    f"checkpoint {shown} holds a {np.asarray(got).dtype}{list(np.shape(got))} "
                    f"where the template has {np.dtype(want.dtype)}{list(want.shape)}: it is "
                    "from another configuration"
                )
        order = None if meta.get("format", 1) >= 2 else _recorded_order(path / "state")
        if meta.get("format", 1) < 2 and order is None:
            raise ValueError(f"checkpoint {shown} is corrupt: its tree metadata can't be read")
        if meta.get("generation") != generation or meta.get("checksum") != _checksum(data, order):
            raise ValueError(f"checkpoint {shown} is corrupt: its checksum does not match")
        state = jax.tree.map(
            lambda t, x: jax.random.wrap_key_data(jnp.asarray(x), dtype=t.dtype)
            if _is_key(t)
            else jnp.asarray(x),
            template,
            data,
        )
        return Checkpoint(generation, state, dict(restored["extra"] or {}))

    def latest_valid(self, template: Any) -> Checkpoint:
        """Restores the newest readable checkpoint, warning about each newer one that isn't.

        Args:
            template: the state's structure, as for :meth:`restore`.

        Raises:
            NoCheckpointError: the directory holds no checkpoint, or none that can be read.
        """
        generations = self.generations()
        if not generations:
            raise NoCheckpointError(
                f"no checkpoint in {self.shown}: nothing to resume; start a new run instead"
            )
        problems = []
        for generation in reversed(generations):
            try:
                return self.restore(generation, template)
            except ValueError as e:
                problems.append(str(e))
                warnings.warn(f"{e}; falling back to the previous checkpoint", stacklevel=2)
        raise NoCheckpointError(
            f"no readable checkpoint in {self.shown} (newest problem: {problems[0]}); "
            "start a new run instead"
        )


def this_process_only() -> ocp.options.MultiprocessingOptions:
    """Orbax's options for a checkpoint this process alone reads and writes: in a multi-process
    run only process 0 owns the run directory, and orbax must not wait for the others."""
    if jax.process_count() == 1:
        return ocp.options.MultiprocessingOptions()
    here = jax.process_index()
    return ocp.options.MultiprocessingOptions(primary_host=here, active_processes={here})
