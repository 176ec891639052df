"""The "Write your own rule" tutorial (docs/write_your_own_rule.md) runs as written.

The page shows ``examples/my_rule_plugin.py`` and ``examples/my_rule.toml`` verbatim
and a Python snippet that registers the plugin and runs the spec; this executes the
snippet, checks the run learned, and checks the tutorial rule against a loop over
positions.
"""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest
from conftest import REPO, assert_close

from hebbcore.errors import SpecError
from hebbcore.network import Network
from hebbcore.plugin_manager import default_registry
from hebbcore.spec import load_spec, parse_spec

DOC = REPO / "docs" / "write_your_own_rule.md"
PLUGIN = REPO / "examples" / "my_rule_plugin.py"
SPEC = REPO / "examples" / "my_rule.toml"


def blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.fixture(scope="module")
def plugin():
    spec = importlib.util.spec_from_file_location("my_rule_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tutorial_registry(plugin):
    return default_registry(plugins=[plugin])


def test_page_shows_the_example_files_verbatim():
    assert PLUGIN.read_text(encoding="utf-8") in blocks("python"), "the rule on the page differs from the file"
    assert SPEC.read_text(encoding="utf-8") in blocks("toml"), "the spec on the page differs from the file"


def test_snippet_registers_the_rule_and_runs_the_spec(tmp_path, monkeypatch, capsys):
    (snippet,) = [b for b in blocks("python") if "default_registry(plugins=" in b]
    monkeypatch.chdir(REPO)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))  # the snippet edits sys.path
    monkeypatch.delitem(__import__("sys").modules, "my_rule_plugin", raising=False)
    code = snippet.replace('out_dir="runs/my_rule"', f"out_dir={str(tmp_path / 'run')!r}")
    assert code != snippet
    namespace: dict = {}
    exec(compile(code, str(DOC), "exec"), namespace)
    result = namespace["result"]
    assert "instar" in namespace["registry"].names("rule")
    assert result.network.nodes[0].rule.name == "instar"
    assert result.metrics["final"]["test_acc"] > 0.5  # chance is 0.1
    assert (tmp_path / "run" / "metrics.json").is_file()
    assert "test_acc" in capsys.readouterr().out


def test_the_spec_validates_options(tutorial_registry, tmp_path):
    bad = SPEC.read_text(encoding="utf-8").replace("threshold = 0.1", "threshold = 1.5")
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    with pytest.raises(SpecError, match="options.threshold"):
        Network(
            load_spec(tmp_path / "bad.toml", tutorial_registry),
            (3, 16, 16),
            10,
            tutorial_registry.get("backend", "numpy")(),
            tutorial_registry,
        )


def test_tutorial_rule_matches_a_loop_over_positions(tutorial_registry):
    registry = tutorial_registry
    spec = parse_spec(
        {
            "seed": 2,
            "layers": [
                {
                    "name": "c",
                    "type": "conv",
                    "out_channels": 4,
                    "kernel_size": 3,
                    "hebbian": {
                        "rule": "instar",
                        "lr": 0.3,
                        "aggregation": "weighted_mean",
                        "options": {"threshold": 0.05},
                    },
                }
            ],
        },
        registry,
    )
    net = Network(spec, (2, 5, 5), 10, registry.get("backend", "numpy")(), registry)
    x = np.random.default_rng(0).standard_normal((3, 2, 5, 5)).astype(np.float32)
    w = net.nodes[0].params["weight"].astype(np.float64)
    num, den = np.zeros_like(w), np.zeros(4)
    for n in range(3):
        for i in range(3):
            for j in range(3):
                patch = x[n, :, i : i + 3, j : j + 3].astype(np.float64)
                for k in range(4):
                    cos = (w[k] * patch).sum() / (np.linalg.norm(w[k]) * np.linalg.norm(patch) + 1e-8)
                    y = max(0.0, cos - 0.05)
                    num[k] += y * y * (patch - w[k])  # the paper's weighted average: Σ y·Δw_p / Σ y
                    den[k] += y
    assert den.min() > 0, "every kernel should learn from some patch here"
    expected = w + 0.3 * num / den[:, None, None, None]
    net.hebbian_step(x, None)
    assert_close(net.nodes[0].params["weight"], expected, what="instar")
