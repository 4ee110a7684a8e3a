"""The one registry pattern (evonas.registry): built-ins, registrations, entry points."""

from __future__ import annotations

import importlib.metadata
import sys
import types

import pytest

from evonas.registry import Registry


class _Toy:
    def __init__(self, genes: int = 3):
        self.genes = genes


def _entry_points(monkeypatch, *eps):
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [e for e in eps if e.group == group])


def test_builtins_registrations_and_unknown_names():
    reg = Registry("encoding", "test.group", {"mlp": _Toy})
    assert reg.names() == ["mlp"] and reg.get("mlp") is _Toy
    reg.register("toy", _Toy)
    reg.register("toy", _Toy)  # the same definition again is a no-op
    assert reg.build("toy", genes=4).genes == 4
    with pytest.raises(ValueError, match=r"'toy' is already registered \(.*_Toy\)"):
        reg.register("toy", lambda: None)
    reg.register("toy", dict, overwrite=True)
    assert reg.get("toy") is dict
    with pytest.raises(ValueError, match=r"'mlp' is a built-in encoding"):
        reg.register("mlp", dict)
    with pytest.raises(ValueError, match=r"unknown encoding 'tyo' \(did you mean 'toy'\?\); "
                       r"known encodings: \['mlp', 'toy'\]"):
        reg.get("tyo")
    with pytest.raises(ValueError, match=r"takes no option 'gens' \(did you mean 'genes'\?\); "
                       r"its options: genes"):
        reg.build("mlp", gens=2)


def test_entry_points_load_lazily_and_a_self_registering_plugin_works(monkeypatch):
    """A plug-in module that calls register on import *and* is an entry point: both at once."""
    reg = Registry("encoding", "test.group", {"mlp": _Toy})
    module = types.ModuleType("selfreg_plugin")

    class Plugged(_Toy):
        pass

    Plugged.__module__ = "selfreg_plugin"
    module.Plugged = Plugged
    imported = []

    def import_plugin():
        imported.append(True)
        reg.register("plugged", Plugged)  # what the plug-in does at import time
        return Plugged

    ep = importlib.metadata.EntryPoint("plugged", "selfreg_plugin:Plugged", "test.group")
    _entry_points(monkeypatch, ep)
    monkeypatch.setitem(sys.modules, "selfreg_plugin", module)
    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", lambda self: import_plugin())
    assert reg.names() == ["mlp", "plugged"] and not imported  # listed without importing
    assert reg.get("plugged") is Plugged and imported == [True]
    assert reg.build("plugged", genes=5).genes == 5 and imported == [True]  # loaded once


def test_entry_points_never_shadow_a_builtin_and_a_broken_plugin_says_which(monkeypatch):
    reg = Registry("benchmark", "test.group", {"nb201": _Toy})
    shadow = importlib.metadata.EntryPoint("nb201", "evil:Table", "test.group")
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_here:make", "test.group")
    _entry_points(monkeypatch, shadow, broken)
    with pytest.warns(UserWarning, match=r"names the built-in benchmark 'nb201'; it is ignored"):
        assert reg.names() == ["broken", "nb201"]
    assert reg.get("nb201") is _Toy
    with pytest.raises(ValueError, match=r"the benchmark 'broken' from entry point "
                       r"'no_such_module_here:make' \(group 'test.group'\) could not be loaded: "
                       r"ModuleNotFoundError"):
        reg.get("broken")
