"""The architecture's contracts (import-linter, configured in pyproject.toml) hold, and would catch a breach."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
LINTER = importlib.util.find_spec("importlinter") is not None
needs_linter = pytest.mark.skipif(not LINTER, reason="import-linter is not installed (pip install -e '.[dev]')")
#: lint-imports, run by this interpreter (a console-script shim may need a PATH the test does not give it)
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the three packages under ``root`` (laid out as installed)."""
    return subprocess.run(
        [*LINT, "--config", str(REPO / "pyproject.toml")],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )


def installed_layout(dest: Path) -> Path:
    for src, name in (("hebbcore", "hebbcore"), ("backends", "hebbcore_backends"), ("plugins", "hebbcore_plugins")):
        shutil.copytree(REPO / src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_every_core_module_is_bound_by_the_lab_contract():
    """A new library module cannot slip past the rule that the library never imports the lab."""
    lab = {"lab", "experiments", "__init__"}
    modules = [*(REPO / "hebbcore").glob("*.py"), *(p.parent for p in (REPO / "hebbcore").glob("*/__init__.py"))]
    core = {f"hebbcore.{p.stem}" for p in modules if p.stem not in lab}  # modules and packages (ops/)
    (contract,) = [c for c in contracts() if c["forbidden_modules"] == ["hebbcore.lab", "hebbcore.experiments"]]
    assert core == set(contract["source_modules"])


@needs_linter
def test_the_tree_keeps_every_contract(tmp_path):
    res = lint(installed_layout(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(contracts())} kept, 0 broken" in res.stdout


@needs_linter
@pytest.mark.parametrize(
    "module,line,broken",
    [
        ("hebbcore/runner.py", "from hebbcore.lab import bench", "The library never imports the lab"),
        ("hebbcore/cli.py", "import hebbcore_plugins.loggers", "name no built-in plugin package"),
        ("hebbcore_backends/numpy_backend.py", "import hebbcore.network", "Backends depend only"),
        ("hebbcore_plugins/aggregations.py", "from hebbcore.spec import RunSpec", "Plugins depend only"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, broken):
    root = installed_layout(tmp_path)
    path = root / module
    path.write_text(path.read_text() + f"\n{line}  # planted\n")
    res = lint(root)
    assert res.returncode != 0
    report = " ".join(res.stdout.split())
    assert f"{broken}" in report and "BROKEN" in report, report


def test_every_package_is_installed_by_a_non_editable_install():
    """setuptools installs the packages pyproject.toml lists, no others: a new one left out (hebbcore/ops/ was,
    once) imports in an editable checkout and is missing from a wheel."""
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"hebbcore": "hebbcore", "hebbcore_backends": "backends", "hebbcore_plugins": "plugins"}
    found = {
        ".".join([top, *init.parent.relative_to(REPO / folder).parts])
        for top, folder in folders.items()
        for init in (REPO / folder).rglob("__init__.py")
    }
    assert found == set(setup["packages"])
