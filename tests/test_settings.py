"""The typed-table converter behind specs and plugin options (hebbcore.settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hebbcore.settings import parse_table
from hebbcore.specfile import toml_table


@dataclass(frozen=True)
class _Options:
    mode: Literal["reflect", "zeros"] = "zeros"
    sizes: tuple[int, ...] = ()


def test_an_enum_value_read_from_toml_is_the_literals_own_object():
    """So that the code may compare enum values by identity as well as by equality (one object per choice)."""
    text = 'mode = "' + "".join(["ref", "lect"]) + '"\nsizes = [1, 2]\n'  # a string built at run time, not interned
    problems: list[str] = []
    options = parse_table(_Options, toml_table(text, "opts.toml"), "opts", problems)
    assert problems == [] and options.mode == "reflect" and options.sizes == (1, 2)
    assert options.mode is "reflect"  # noqa: F632 (the identity is the point of this test)


def test_wrong_values_are_collected_with_their_key_path_and_a_did_you_mean():
    problems: list[str] = []
    parse_table(_Options, {"mode": "reflct", "sizes": [1, "2"], "extra": 1}, "opts", problems)
    assert any("opts.mode" in p and "did you mean 'reflect'" in p for p in problems), problems
    assert any("opts.sizes" in p for p in problems) and any("extra" in p for p in problems), problems
