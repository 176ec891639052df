"""The README shows today: its torch snippet runs as written, and its rules table is the registry's."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

README = (REPO / "README.md").read_text()


def test_the_torch_snippet_runs_as_written():
    pytest.importorskip("torch")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README, re.S) if "hebbcore.torch_model" in b]
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert tuple(scope["scores"].shape) == (64, 10)


def test_the_rules_table_is_the_registry(registry):
    rows = re.findall(r"^\| `(\w+)` \| .* \| (0/1|non-negative|signed) \| `(\w+)` \|$", README, re.M)
    kinds = {"binary": "0/1", "nonnegative": "non-negative", "signed": "signed"}
    builtin = {n for n in registry.names("rule") if registry.origin[("rule", n)] == "rules"}
    assert {r[0] for r in rows} == builtin
    for name, coefficients, aggregation in rows:
        cls = registry.get("rule", name)
        assert (kinds[cls.coefficients], cls.aggregation) == (coefficients, aggregation), name


def test_the_datasets_table_is_the_registry(registry):
    listed = set(re.findall(r"`(\w+)`", README.split("## Datasets")[1].split("## Rules")[0].split("\n\n")[1]))
    builtin = {n for n in registry.names("dataset") if registry.origin[("dataset", n)] == "datasets"}
    assert builtin <= listed, builtin - listed
