"""Spec files: TOML read (``extends`` chains, ``--set`` overrides, paths resolved against each file's folder)
and written back.

Works on plain tables; :mod:`hebbcore.spec` turns them into a :class:`hebbcore.spec.RunSpec`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import tomli_w

from .errors import SpecError
from .plugin_manager import did_you_mean
from .settings import describe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Deepest chain of ``extends`` a spec may have.
MAX_EXTENDS = 16


def read_spec_table(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, list[Path]]:
    """The TOML table of ``path`` merged onto the files it ``extends``, its paths absolute; and the chain."""
    where = " extends ".join(map(str, (*seen, path)))
    if path.resolve() in [p.resolve() for p in seen]:
        raise SpecError([f"extends {str(path)!r} again: a cycle"], where)
    if len(seen) >= MAX_EXTENDS:
        raise SpecError([f"more than {MAX_EXTENDS} levels of extends"], where)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(["file does not exist"], where) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"cannot read the file ({exc.__class__.__name__})"], where) from None
    table = resolve_paths(toml_table(text, where), path.parent)
    base = table.pop("extends", None)
    if base is None:
        return table, [path]
    if not isinstance(base, str) or not base:
        raise SpecError([f"extends: expected the path of a spec file, got {describe(base)}"], where)
    base_path = Path(base).expanduser()
    base_path = base_path if base_path.is_absolute() else path.parent / base_path
    base_table, chain = read_spec_table(base_path, (*seen, path))
    new, old = table.get("data"), base_table.get("data")
    if isinstance(new, dict) and isinstance(old, dict) and new.get("source", old.get("source")) != old.get("source"):
        base_table = {**base_table, "data": {k: v for k, v in old.items() if k != "options"}}  # the old source's
    return deep_merge(base_table, table), [path, *chain]


def deep_merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: tables merge key by key; any other value (arrays of layers included) replaces."""
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_setting(table: dict, setting: str) -> list[str]:
    """Apply one ``key.path=value`` (the value TOML, or else a bare string) to ``table``; problems, if any."""
    key, sep, raw = setting.partition("=")
    parts = [p.strip() for p in key.strip().split(".")]
    if not sep or not all(parts):
        return [f"--set {setting!r}: expected key.path=value"]
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word is a string: --set data.source=cifar10
    node: Any = table
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):  # [[layers]]: by name
            named = {str(item.get("name")): item for item in node if isinstance(item, dict)}
            if part not in named:
                hint = did_you_mean(part, named)
                return [f"--set {key.strip()}: no layer named {part!r}{hint}; layers: {', '.join(named)}"]
            node = named[part]
        else:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, (dict, list)):
                return [f"--set {key.strip()}: {'.'.join(parts[: i + 1])} is a value, not a table"]
            node = child
    if isinstance(node, list):
        return [f"--set {key.strip()}: name a layer's field (layers.<name>.<field>)"]
    node[parts[-1]] = value
    return []


#: Options of data sources and transforms that name files or folders (resolved like ``init_weights``).
PATH_OPTIONS = ("path", "root", "cache_dir")


def resolve_paths(table: dict, base_dir: Path) -> dict:
    """``table`` with its relative file paths made absolute against ``base_dir``, the spec file's folder.

    The paths are ``init_weights`` and the :data:`PATH_OPTIONS` of the data source and the transforms; ``~``
    is expanded; values of the wrong type are left for the checks to report. ``table`` comes fresh from the
    TOML reader, and its transform tables are changed in place."""

    def absolute(value: Any) -> Any:
        if not isinstance(value, str) or not value:
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base_dir / p).resolve())

    table = dict(table)
    if "init_weights" in table:
        table["init_weights"] = absolute(table["init_weights"])
    data = table.get("data")
    if isinstance(data, dict):
        data = table["data"] = dict(data)
        tables = (
            [data] + [t for t in data.get("transforms", []) if isinstance(t, dict)]
            if isinstance(data.get("transforms", []), list)
            else [data]
        )
        for owner in tables:
            options = owner.get("options")
            if isinstance(options, dict):
                owner["options"] = {k: absolute(v) if k in PATH_OPTIONS else v for k, v in options.items()}
    return table


def toml_table(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"not valid TOML: {exc}"], source) from None
    except RecursionError:
        raise SpecError(["not valid TOML: arrays or tables nested too deeply"], source) from None


def dumps_toml(table: dict) -> str:
    """Serialise a table of scalars, arrays, sub-tables and arrays of tables as TOML."""
    lines: list[str] = []
    _dump_table(table, [], lines)
    return "\n".join(lines).strip() + "\n"


def toml_value(v: Any) -> str:
    """One value as TOML (tomli-w's escaping and number formats); on one line, as a spec writes arrays."""
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return tomli_w.dumps({"v": v}).removeprefix("v = ").rstrip("\n")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else toml_value(k)


def _dump_table(table: dict, path: list[str], lines: list[str]) -> None:
    for k, v in table.items():
        if not isinstance(v, dict) and not _is_table_array(v):
            lines.append(f"{_key(k)} = {toml_value(v)}")
    for k, v in table.items():
        if isinstance(v, dict):
            lines.append("")
            lines.append("[" + ".".join(map(_key, path + [k])) + "]")
            _dump_table(v, path + [k], lines)
        elif _is_table_array(v):
            for item in v:
                lines.append("")
                lines.append("[[" + ".".join(map(_key, path + [k])) + "]]")
                _dump_table(item, path + [k], lines)
