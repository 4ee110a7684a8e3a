"""The layer rule (pyproject.toml's import-linter contract) holds, and breaking it is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, capture_output=True, text=True,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_the_contract_names_every_package():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    contract, acyclic = config["contracts"]
    assert acyclic["type"] == "acyclic_siblings" and acyclic["ancestors"] == ["evonas"]
    listed = {name.strip() for layer in contract["layers"] for name in layer.split("|")}
    packages = {p.name for p in (ROOT / "evonas").iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()}
    modules = {p.stem for p in (ROOT / "evonas").glob("*.py") if p.stem != "__init__"}
    assert listed == packages | modules
    assert contract["exhaustive"] is True


def test_a_lower_layer_importing_a_higher_one_breaks_the_contract(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "evonas", copy / "evonas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    assert _lint(copy).returncode == 0  # the copy keeps the contract, as the tree does
    space = copy / "evonas" / "genomes" / "space.py"
    space.write_text(space.read_text() + "\nfrom evonas.strategies import search  # noqa\n")
    out = _lint(copy)
    assert out.returncode != 0
    assert "evonas layers BROKEN" in out.stdout
    assert "evonas.genomes.space -> evonas.strategies" in out.stdout


def test_an_import_cycle_inside_a_package_breaks_the_contract(tmp_path):
    """The final steps import their context; the context importing a step back (the circle the
    final stage once hid behind function-local imports) is caught, inside a function too."""
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "evonas", copy / "evonas", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    context = copy / "evonas" / "experiment" / "finish" / "context.py"
    context.write_text(context.read_text() + "\n\ndef _late():\n"
                       "    from evonas.experiment.finish import distil  # noqa\n")
    out = _lint(copy)
    assert out.returncode != 0
    assert "no import cycles BROKEN" in out.stdout and "evonas layers KEPT" in out.stdout
