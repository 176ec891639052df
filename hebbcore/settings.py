"""Typed settings from TOML tables: a table becomes a frozen dataclass, every problem collected with its key path.

Used for the spec and for every plugin's ``Options``: field types (``int``, ``float``, ``str``, ``bool``,
``Literal`` enums, tuples, nested dataclasses) are checked, an unknown key gets a did-you-mean, and a wrong
value keeps its field's default so that later checks still run and report too.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any

from .plugin_manager import did_you_mean


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"array of {type_name(typing.get_args(tp)[0])}"
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if dataclasses.is_dataclass(tp):
        return "table"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(tp, getattr(tp, "__name__", str(tp)))


def describe(value: Any) -> str:
    name = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "table"}
    return (
        f"{name.get(type(value), type(value).__name__)} {value!r}"
        if not isinstance(value, (dict, list))
        else name[type(value)]
    )


def convert(tp: Any, value: Any, path: str, problems: list[str]) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return convert(inner, value, path, problems)
    if tp is Any:
        return value
    if origin is typing.Literal:  # an enum option: the value must be one of the listed ones
        choices = typing.get_args(tp)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            hint = did_you_mean(value, [str(c) for c in choices]) if isinstance(value, str) else ""
            problems.append(f"{path}: expected {type_name(tp)}, got {describe(value)}{hint}")
            return None
        return choices[choices.index(value)]  # the Literal's own object: one interned string per choice
    if origin is tuple:
        if not isinstance(value, list):
            problems.append(f"{path}: expected an {type_name(tp)}, got {describe(value)}")
            return ()
        inner = typing.get_args(tp)[0]
        return tuple(convert(inner, v, f"{path}[{i}]", problems) for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return parse_table(tp, value, path, problems)
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported spec field type {tp!r}")
    if not ok:
        problems.append(f"{path}: expected {type_name(tp)}, got {describe(value)}")
        return None
    if tp is float:
        value = float(value)
        if not math.isfinite(value):
            problems.append(f"{path}: expected a finite number, got {value}")
    return value


def parse_table(cls: type, table: Any, path: str, problems: list[str]) -> Any:
    """Build dataclass ``cls`` from a TOML table, appending every problem to ``problems``.

    Keys that are not fields are reported with a did-you-mean. A field whose value
    is wrong keeps its default, so the caller's further checks still run; the caller raises when
    ``problems`` is not empty. Returns None when a required field is missing or wrong.
    """
    prefix = f"{path}." if path else ""
    if not isinstance(table, dict):
        problems.append(f"{path or 'spec'}: expected a table, got {describe(table)}")
        return None
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in table:
        if key not in fields:
            problems.append(f"{prefix}{key}: unknown key{did_you_mean(key, fields)}")
    kwargs: dict[str, Any] = {}
    buildable = True
    for name, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if name in table:
            before = len(problems)
            value = convert(hints[name], table[name], f"{prefix}{name}", problems)
            if len(problems) == before or dataclasses.is_dataclass(value):  # a sub-table keeps its good fields
                kwargs[name] = value
            elif required:
                buildable = False
            # else: the default stands in, so the checks that need the table still run and report too
        elif required:
            problems.append(f"{prefix}{name}: missing (expected {type_name(hints[name])})")
            buildable = False
    return cls(**kwargs) if buildable else None


def parse_options(options_cls: type, raw: Any, path: str, problems: list[str]) -> Any:
    """A plugin's Options dataclass from the raw ``options`` table (``{}`` when absent)."""
    return parse_table(options_cls, {} if raw is None else raw, path, problems)


def env_bytes(name: str, default: int) -> int:
    """A size in bytes from the environment variable ``name``: a whole number (``4000000000`` or ``4e9``),
    ``default`` when unset or empty; anything else raises :class:`hebbcore.errors.HebbcoreError` naming it."""
    from .errors import HebbcoreError

    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        try:
            number = float(text)  # 4e9
        except ValueError:
            number = math.nan
        value = int(number) if math.isfinite(number) and number == int(number) else -1
    if value < 0:
        raise HebbcoreError(f"{name}: expected a whole number of bytes such as 4000000000 or 4e9, got {text!r}")
    return value


def size_text(n: int) -> str:
    """``n`` bytes for a message: 512 B, 3.4 MB, 12.0 GB."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
