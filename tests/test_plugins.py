"""Plugins: a third-party rule registered by hand and through an entry point; loud failures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from hebbcore import hookimpl
from hebbcore.errors import PluginError
from hebbcore.plugin_manager import Registry, default_registry, make_plugin_manager
from hebbcore.runner import run
from hebbcore.spec import loads_spec

sys.path.insert(0, str(REPO / "tests" / "example_plugin"))
import sign_hebb

SPEC = """
name = "plugin"
[data]
source = "synthetic"
[data.options]
n_train = 200
n_val = 50
n_test = 50
size = 8
[hebbian]
epochs = 1
batch_size = 50
[[layers]]
name = "c"
type = "conv"
out_channels = 4
kernel_size = 3
[layers.hebbian]
rule = "sign_hebb"
"""


def test_registered_rule_runs_from_a_spec(tmp_path):
    registry = default_registry(plugins=[sign_hebb])
    assert registry.origin[("rule", "sign_hebb")]
    spec = loads_spec(SPEC, registry)
    result = run(spec, registry, out_dir=tmp_path, progress=False)
    w = np.load(tmp_path / "weights.npz")["c.weight"]
    assert w.shape == (4, 3, 3, 3) and w.dtype == np.float32 and np.isfinite(w).all()
    assert result.metrics["epochs"][0]["phase"] == "hebbian"


class _Wrong:
    """Plugins that return arrays numpy would broadcast or promote without a word."""

    class NarrowCoefficient(sign_hebb.SignHebb):
        name = "narrow_coefficient"

        def post_synaptic(self, ctx):
            return super().post_synaptic(ctx)[:, :1]  # (N, 1, Ho, Wo): broadcasts against every kernel

    class OneKernelSums(sign_hebb.SignHebb):
        name = "one_kernel_sums"

        def update_sums(self, ctx, y):
            hebb, coef = super().update_sums(ctx, y)
            return hebb[:1], coef

    class DoublePrecision(sign_hebb.SignHebb):
        name = "double_precision"

        def post_synaptic(self, ctx):
            return (ctx.dot > 0) * 1.0  # float64 in numpy

    @hookimpl
    def hebbcore_register_rules(self):
        return [self.NarrowCoefficient, self.OneKernelSums, self.DoublePrecision]


@pytest.mark.parametrize(
    "rule, needle",
    [
        ("narrow_coefficient", "rule 'narrow_coefficient': post_synaptic returned ndarray (50, 1, 6, 6) float32 on "
         "cpu; expected the shape and dtype of ctx.dot, (50, 4, 6, 6) float32, on cpu"),
        ("one_kernel_sums", "the summed update ndarray (1, 3, 3, 3) float32 on cpu; expected the shape and dtype of "
         "w, (4, 3, 3, 3) float32, on cpu"),
        ("double_precision", "post_synaptic returned ndarray (50, 4, 6, 6) float64 on cpu; expected"),
    ],
)  # fmt: skip
def test_a_rule_returning_the_wrong_shape_or_dtype_is_named(tmp_path, rule, needle):
    registry = default_registry(plugins=[_Wrong()])
    spec = loads_spec(SPEC.replace('rule = "sign_hebb"', f'rule = "{rule}"'), registry)
    with pytest.raises(PluginError) as err:
        run(spec, registry, out_dir=tmp_path / "o", progress=False)
    assert needle in str(err.value)


def test_unregistered_rule_is_a_spec_error(registry):
    from hebbcore.errors import SpecError

    with pytest.raises(SpecError, match="unknown rule 'sign_hebb'"):
        loads_spec(SPEC, registry)


def test_entry_point_plugin_is_discovered(tmp_path):
    """Install the plugin the way pip would (a dist-info with entry_points.txt) and run the CLI."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sign_hebb.py").write_text((REPO / "tests" / "example_plugin" / "sign_hebb.py").read_text())
    dist = site / "hebbcore_sign_hebb-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hebbcore-sign-hebb\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hebbcore]\nsign_hebb = sign_hebb\n")
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC)
    env_code = (
        f"import sys; sys.path.insert(0, {str(site)!r}); from hebbcore.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    res = subprocess.run([sys.executable, "-c", env_code, "plugins"], capture_output=True, text=True)
    assert "sign_hebb (sign_hebb)" in res.stdout, res.stderr
    res = subprocess.run(
        [sys.executable, "-c", env_code, "run", str(spec), "--out", str(tmp_path / "o")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_an_entry_point_plugin_that_fails_to_import_is_named(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_rules.py").write_text("import nonexistent_module_for_the_test\n")
    dist = site / "hebbcore_broken-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hebbcore-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[hebbcore]\nbroken = broken_rules\n")
    code = f"import sys; sys.path.insert(0, {str(site)!r}); from hebbcore.cli import main; sys.exit(main(sys.argv[1:]))"
    res = subprocess.run([sys.executable, "-c", code, "plugins"], capture_output=True, text=True)
    err = res.stderr.strip()
    assert res.returncode != 0 and len(err.splitlines()) == 1, err
    assert "plugin 'broken' (broken_rules, from hebbcore-broken) failed to load: ModuleNotFoundError" in err, err


def test_plugins_lists_every_kind_with_its_plugin():
    res = subprocess.run([sys.executable, "-m", "hebbcore.cli", "plugins"], capture_output=True, text=True)
    kinds = [line.split(":")[0] for line in res.stdout.splitlines()]
    assert kinds == [f"{k}s" for k in default_registry().tables], res.stdout
    assert "conv (layers)" in res.stdout and "weighted_mean (aggregations)" in res.stdout


def test_duplicate_names_rejected():
    class Again:
        @hookimpl
        def hebbcore_register_rules(self):
            return [sign_hebb.SignHebb]

    pm = make_plugin_manager(plugins=[sign_hebb, Again()])
    with pytest.raises(PluginError, match="rule 'sign_hebb' is registered twice"):
        Registry.from_plugin_manager(pm)


def test_misspelled_hook_fails_loudly():
    class Typo:
        @hookimpl
        def hebbcore_register_rule(self):  # missing 's'
            return []

    with pytest.raises(PluginError, match="hebbcore_register_rule"):
        make_plugin_manager(plugins=[Typo()])


def test_registration_must_return_classes_of_the_right_kind():
    class Wrong:
        @hookimpl
        def hebbcore_register_rules(self):
            return [object]

    with pytest.raises(PluginError, match="expected a subclass of LearningRule"):
        Registry.from_plugin_manager(make_plugin_manager(plugins=[Wrong()]))
