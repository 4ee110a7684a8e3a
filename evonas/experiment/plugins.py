"""Loading plug-ins: modules that register encodings, strategies or benchmarks when imported.

Installed packages reach evonas through their entry points and need nothing here. A plug-in
that is a script (``examples/trainable_encoding.py``) or an importable module is loaded
explicitly: listed under ``plugins`` in an experiment's YAML (paths relative to the YAML file),
or given as ``evonas --plugin PATH_OR_MODULE``. Only the user's own input is ever loaded: a run
directory's ``config.yaml`` may come from someone else, so ``evonas resume`` never loads the
plug-ins it lists (pass ``--plugin`` again).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_LOADED: dict[str, ModuleType] = {}


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"


def load_plugin(spec: str, base_dir: str | os.PathLike | None = None) -> ModuleType:
    """Imports one plug-in: a ``.py`` file (relative to ``base_dir``, default the working
    directory) or a module name; each is loaded once per process.

    Raises:
        ValueError: the file does not exist, or importing it failed (with the error's first line).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a plugin is a .py file or a module name; got {spec!r}")
    spec = spec.strip()
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = Path(spec).expanduser()
        if not path.is_absolute():
            path = Path(base_dir or ".") / path
        path = path.resolve()
        key = str(path)
        if key in _LOADED:
            return _LOADED[key]
        if not path.is_file():
            raise ValueError(f"plugin {spec!r}: no such file {path}")
        name = f"evonas_plugin_{path.stem}"
        loader = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module
        try:
            loader.loader.exec_module(module)
        except Exception as err:  # the plug-in's own error, in one line
            sys.modules.pop(name, None)
            raise ValueError(f"plugin {spec!r} ({path}) failed to load: {_first_line(err)}"
                             ) from None
    else:
        key = spec
        if key in _LOADED:
            return _LOADED[key]
        try:
            module = importlib.import_module(spec)
        except Exception as err:
            raise ValueError(f"plugin {spec!r} could not be imported: {_first_line(err)}"
                             ) from None
    _LOADED[key] = module
    return module


def load_plugins(specs: Sequence[str], base_dir: str | os.PathLike | None = None
                 ) -> list[ModuleType]:
    """:func:`load_plugin` for each of ``specs``, in order."""
    return [load_plugin(spec, base_dir) for spec in specs]
