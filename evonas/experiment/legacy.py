"""Configs and run directories written before the config had a section per stage.

Up to fingerprint version 2 the config was flat within its sections: ``final.retrain_top_k``,
``final.distil`` with ``final.distil_*``, ``train.inherit`` and ``train.rungs``, ``search.proxies``
and so on. :func:`upgrade` maps such a mapping to the sections (``final.retrain.top_k``,
``final.distil: {...}``, ``evaluator.inherit``, ``evaluator.halving``, ``evaluator.proxies``),
so an old YAML file, ``--set`` key or run directory still loads, and says once what the keys are
called now. :func:`fingerprint` is the hash those run directories recorded, computed as the code
of their time computed it, so they resume. Nothing here changes again: new fields go into the
sections, where the fingerprint derives from the fields themselves.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

# old path -> new path, for keys that only moved.
MOVED: dict[str, str] = {
    "final.retrain_top_k": "final.retrain.top_k",
    "final.retrain_steps": "final.retrain.steps",
    "final.ensemble": "final.retrain.ensemble",
    "final.front_size": "final.front.size",
    "final.distil_temperature": "final.distil.temperature",
    "final.distil_alpha": "final.distil.alpha",
    "final.distil_steps": "final.distil.steps",
    "final.prune_sparsity": "final.prune.sparsity",
    "final.prune_steps": "final.prune.steps",
    "train.inherit_steps": "evaluator.inherit.steps",
    "train.rungs": "evaluator.halving.rungs",
    "train.eta": "evaluator.halving.eta",
    "search.proxies": "evaluator.proxies",
    "search.prefilter": "evaluator.prefilter",
    "search.latency": "evaluator.latency",
}
# old switches of a section that is now present (a mapping) or absent (null): old path -> (the
# section's new path, the key of the section the old value goes into, or None for a boolean).
SWITCHES: dict[str, tuple[str, str | None]] = {
    "final.distil": ("final.distil", None),
    "final.prune": ("final.prune", "mode"),
    "train.inherit": ("evaluator.inherit", None),
}
# New sections and the old values that mean "off", so the section is left out.
_OFF: dict[str, Any] = {
    "evaluator.halving.rungs": [],
    "evaluator.prefilter.proxy": None,
}
OLD_KEYS = tuple(sorted({*MOVED, *SWITCHES}))


def _get(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _pop(data: dict[str, Any], path: str) -> tuple[bool, Any]:
    *parents, leaf = path.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return False, None
    if leaf not in node:
        return False, None
    return True, node.pop(leaf)


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _old_switch(path: str, value: Any) -> bool:
    """Whether ``value`` at ``path`` is an old switch (``final.distil: true``, ``final.prune:
    structured``, ``train.inherit: parent``) rather than the section of the same name."""
    if path == "final.distil":
        return isinstance(value, bool)
    if path == "final.prune":
        return isinstance(value, str)
    return True


_SWITCH_VALUES = {"final.distil": "true or false", "train.inherit": "'parent' or null"}


def _check_switch(path: str, value: Any) -> None:
    """An old switch's value is one it could take (``final.prune``'s mode is checked under its
    new name)."""
    if path == "train.inherit" and value not in ("parent", None):
        raise ValueError(f"{path} must be {_SWITCH_VALUES[path]} (it is now evaluator.inherit, "
                         f"a section or null); got {value!r}")


def upgrade(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` with every old key moved to its section, and the old keys it had.

    A switch turned off (``final.distil: false``, ``final.prune: null``, ``train.inherit: null``,
    ``train.rungs: []``, ``search.prefilter.proxy: null``) becomes an absent section, and the
    settings of a switched-off section, which did nothing, go with it.

    Raises:
        ValueError: an old key and its new name both set, naming both.
    """
    if not isinstance(data, Mapping):
        return data, []  # the config's own check names what is wrong with it
    data = copy.deepcopy(dict(data))
    found = []
    for path in OLD_KEYS:
        present, value = _get(data, path)
        if present and (path not in SWITCHES or _old_switch(path, value)):
            found.append(path)
            if path in MOVED and _get(data, MOVED[path])[0]:
                raise ValueError(f"the config sets both {path!r} and its new name "
                                 f"{MOVED[path]!r}; keep {MOVED[path]!r}")
    if found and _get(data, "final.prune") == (True, None) and "final.prune" not in found:
        found.append("final.prune")  # null, beside old keys: the old switch, off
    off: set[str] = set()
    for path in found:
        if path in SWITCHES:
            section, key = SWITCHES[path]
            value = _pop(data, path)[1]
            _check_switch(path, value)
            if (bool(value) if key is None else value is not None):
                _put(data, section, {} if key is None else {key: value})
            else:
                off.add(section)
    for path in found:
        if path not in MOVED:
            continue
        new = MOVED[path]
        value = _pop(data, path)[1]
        section = new.rsplit(".", 1)[0]
        if new in _OFF and value == _OFF[new]:
            off.add(section)
        elif path == "search.prefilter" and isinstance(value, Mapping) and value.get(
                "proxy") is None:
            off.add(new)
        elif section not in off:  # a setting of a switched-off section did nothing
            _put(data, new, value)
    for section in off:
        _put(data, section, None)
    return data, found


# How a switch is written now, for the note.
_SWITCHED_TO = {"final.distil": "final.distil (a section, or null)",
                "final.prune": "final.prune.mode (null: final.prune)",
                "train.inherit": "evaluator.inherit (a section, or null)"}


def renamed_note(found: list[str]) -> str:
    """One line saying what old keys are called now."""
    names = ", ".join(f"{old} -> {MOVED.get(old) or _SWITCHED_TO[old]}" for old in found)
    return f"config keys from before evonas 0.2 were read under their new names: {names}"


def rename(path: str, value: Any) -> list[tuple[str, Any]]:
    """A ``--set`` override ``path=value`` in the sections' terms: ``(path, value)`` pairs."""
    if path in SWITCHES:
        section, key = SWITCHES[path]
        if key is None:
            return [(section, {} if value else None)]
        return [(section, None)] if value is None else [(f"{section}.{key}", value)]
    if path in MOVED:
        new = MOVED[path]
        if new in _OFF and value == _OFF[new]:
            return [(new.rsplit(".", 1)[0], None)]
        return [(new, value)]
    for old, new in MOVED.items():  # a key inside a moved section (search.latency.repeats)
        if path.startswith(old + "."):
            return [(new + path[len(old):], value)]
    return [(path, value)]


# -- the fingerprints of versions 1 and 2 ------------------------------------------------------

_EXCLUDED = ("run_dir", "plugins", "display", "train.compile_cache_dir", "train.max_programs")
_ADDED_SINCE_V2: dict[str, Any] = {
    "search.proxies": [], "search.prefilter": {"proxy": None, "factor": 4},
    "train.rungs": [], "train.eta": 3, "train.inherit": None, "train.inherit_steps": None,
    "evaluator.supernet_steps": 4000,
    "final.distil": False, "final.distil_temperature": 4.0, "final.distil_alpha": 0.9,
    "final.distil_steps": None, "final.prune": None, "final.prune_sparsity": 0.5,
    "final.prune_steps": None,
    # Your own data and the image pipeline (at their defaults: what those versions ran).
    "dataset.path": None, "dataset.label": None, "dataset.image_size": None,
    "dataset.data_dir": None, "dataset.download": False, "dataset.digest": None,
    "train.augment": None, "train.weight_decay": 0.0, "train.precision": "float32",
    "train.label_smoothing": 0.0,
    "search.time_budget": None, "search.warm_start": None, "search.repair": None,
}
_V1_EXCLUDED = (*_EXCLUDED, "train.plan", "train.memory_budget_mb", "train.steps_per_call",
                *_ADDED_SINCE_V2)
_DEFAULT_EVALUATOR = {"name": "training", "benchmark": None, "options": {}, "noise": 0.0,
                      "supernet_steps": 4000}


def fingerprint(flat: Mapping[str, Any], version: int) -> str:
    """The fingerprint of version 1 or 2 of a config in the old layout (``config.yaml`` of a
    run directory of that time, or :func:`flatten` of a config), as evonas computed it then.

    Raises:
        ValueError: another version.
    """
    if version not in (1, 2):
        raise ValueError(f"legacy fingerprint version must be 1 or 2; got {version!r}")
    data = copy.deepcopy(dict(flat))
    evaluator = data.get("evaluator")
    if evaluator is None or (isinstance(evaluator, Mapping)
                             and {**_DEFAULT_EVALUATOR, **evaluator} == _DEFAULT_EVALUATOR):
        data.pop("evaluator", None)
    for path in _EXCLUDED if version == 2 else _V1_EXCLUDED:
        _pop(data, path)
    for path, value in _ADDED_SINCE_V2.items():
        present, held = _get(data, path)
        if present and held == value:
            _pop(data, path)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def flatten(sections: Mapping[str, Any]) -> dict[str, Any]:
    """A config in the sections' layout (``ExperimentConfig.to_dict()``) in the old flat one,
    every old key written, so its version-1 and -2 fingerprints can be computed."""
    data = copy.deepcopy(dict(sections))
    final = data.get("final", {})
    retrain, front = final.pop("retrain", {}), final.pop("front", {})
    distil, prune = final.pop("distil", None), final.pop("prune", None)
    finetune = final.pop("finetune", None)  # added since: only a config that sets it has it
    if finetune is not None:
        final["finetune"] = finetune
    final.update(retrain_top_k=retrain.get("top_k"), retrain_steps=retrain.get("steps"),
                 ensemble=retrain.get("ensemble"), front_size=front.get("size"),
                 distil=distil is not None,
                 distil_temperature=(distil or {}).get("temperature", 4.0),
                 distil_alpha=(distil or {}).get("alpha", 0.9),
                 distil_steps=(distil or {}).get("steps"),
                 prune=None if prune is None else prune.get("mode"),
                 prune_sparsity=(prune or {}).get("sparsity", 0.5),
                 prune_steps=(prune or {}).get("steps"))
    evaluator = data.get("evaluator", {})
    inherit, halving = evaluator.pop("inherit", None), evaluator.pop("halving", None)
    prefilter = evaluator.pop("prefilter", None)
    proxies, latency = evaluator.pop("proxies", []), evaluator.pop("latency", None)
    data.get("train", {}).update(
        rungs=list((halving or {}).get("rungs", [])), eta=(halving or {}).get("eta", 3),
        inherit=None if inherit is None else "parent",
        inherit_steps=(inherit or {}).get("steps"))
    search = data.get("search", {})
    search.update(latency=latency, proxies=list(proxies),
                  prefilter=prefilter or {"proxy": None, "factor": 4})
    return data
