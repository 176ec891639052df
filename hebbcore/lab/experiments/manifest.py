"""The manifest of an experiment folder (``experiments.toml``): its rows and their dependencies."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hebbcore.errors import SpecError
from hebbcore.spec import check_path_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


MANIFEST = "experiments.toml"
GOALS = ("match", "beat")


@dataclass
class Experiment:
    """One row of a manifest (or a spec file with no manifest entry)."""

    name: str
    folder: Path
    spec: str = ""
    same_as: str = ""
    paper: float | None = None
    table: str = ""
    row: str = ""
    init_from: str = ""
    init_layers: tuple[str, ...] = ()
    #: ``"key.path=value"`` settings applied to the spec, as ``hebbcore run --set`` does (a layer by its name).
    set: tuple[str, ...] = ()
    goal: str = "match"
    repeats: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def spec_path(self) -> Path:
        return self.folder / self.spec


def load_manifest(folder: str | Path) -> OrderedDict[str, Experiment]:
    """The rows of ``folder/experiments.toml`` by name (empty when the folder has none)."""
    folder = Path(folder)
    path = folder / MANIFEST
    out: OrderedDict[str, Experiment] = OrderedDict()
    if not path.is_file():
        return out
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError([f"cannot read the manifest ({exc})"], str(path)) from None
    problems = []
    known = {f.name for f in dataclasses.fields(Experiment)} - {"folder", "extra"}
    for i, row in enumerate(table.get("experiment", [])):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            problems.append(f"experiment[{i}]: expected a table with a string 'name'")
            continue
        kw = {k: v for k, v in row.items() if k in known}
        kw["init_layers"] = tuple(kw.get("init_layers", ()))
        settings = kw.get("set", [])
        if not isinstance(settings, list) or not all(isinstance(x, str) for x in settings):
            problems.append(f'experiment[{i}].set: expected an array of "key.path=value" strings')
            settings = []
        kw["set"] = tuple(settings)
        exp = Experiment(folder=folder, extra={k: v for k, v in row.items() if k not in known}, **kw)
        problems += [f"experiment[{i}].name: {p}" for p in check_path_name(exp.name)]
        if not exp.spec and not exp.same_as:
            problems.append(f"experiment[{i}] ({exp.name}): needs 'spec' or 'same_as'")
        if exp.name in out:
            problems.append(f"experiment[{i}]: name {exp.name!r} is used twice")
        if exp.goal not in GOALS:
            problems.append(f"experiment[{i}] ({exp.name}).goal: expected one of {GOALS}, got {exp.goal!r}")
        out[exp.name] = exp
    for exp in out.values():
        for dep in filter(None, (exp.same_as, exp.init_from, exp.repeats)):
            if dep not in out:
                problems.append(f"experiment {exp.name!r}: refers to {dep!r}, which the manifest does not list")
    if problems:
        raise SpecError(problems, str(path))
    return out


def collect(paths: Sequence[str | Path]) -> tuple[OrderedDict[str, Experiment], list[str]]:
    """All manifest rows of the folders involved, and the names requested by ``paths`` (spec files or folders)."""
    rows: OrderedDict[str, Experiment] = OrderedDict()
    wanted: list[str] = []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        manifest = load_manifest(folder)
        for name, exp in manifest.items():
            other = rows.setdefault(name, exp)
            if other.folder.resolve() != exp.folder.resolve():  # one name, one run: results are kept by name
                raise SpecError(
                    [f"experiment {name!r} is a row of both {str(other.folder)!r} and {str(exp.folder)!r}; "
                     f"run the folders one at a time"],
                    MANIFEST,
                )  # fmt: skip
        if p.is_dir():
            wanted += [n for n, e in manifest.items() if e.spec]
            continue
        if not p.is_file():
            raise SpecError(["file does not exist"], str(p))
        using = [n for n, e in manifest.items() if e.spec and e.spec_path.resolve() == p.resolve()]
        if not using:  # a spec outside any manifest
            rows.setdefault(p.stem, Experiment(name=p.stem, folder=folder, spec=p.name))
            using = [p.stem]
        wanted += using  # every row that runs this spec (a base spec serves several)
    return rows, list(OrderedDict.fromkeys(wanted))


def order_with_dependencies(rows: dict[str, Experiment], wanted: Sequence[str]) -> list[str]:
    """``wanted`` plus the runs they start from, dependencies first."""
    out: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in out:
            return
        if name in visiting:
            raise SpecError([f"experiment {name!r}: circular init_from / same_as"], MANIFEST)
        visiting.add(name)
        exp = rows[name]
        for dep in filter(None, (exp.same_as, exp.init_from)):
            visit(dep)
        visiting.discard(name)
        if exp.spec:
            out.append(name)

    for n in wanted:
        visit(n)
    return out


# ------------------------------------------------------------------------------------------------ results


@dataclass
class Overrides:
    """Changes to every spec of a command (reduced runs are labelled as such in metrics and report)."""

    sgd_epochs: int | None = None
    hebbian_epochs: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None

    def active(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def apply(self, table: dict) -> dict:
        table = json.loads(json.dumps(table))  # deep copy of plain data
        if self.sgd_epochs is not None and table.get("sgd", {}).get("epochs", 0) > 0:
            table["sgd"]["epochs"] = self.sgd_epochs
        if self.hebbian_epochs is not None:
            table.setdefault("hebbian", {})["epochs"] = self.hebbian_epochs
        for k in ("n_train", "n_val", "n_test"):
            v = getattr(self, k)
            if v is not None:
                table.setdefault("data", {}).setdefault("options", {})[k] = v
        return table
