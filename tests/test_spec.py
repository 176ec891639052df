"""Spec validation: every problem at once, with key paths and did-you-mean; resolved specs load back."""

import numpy as np
import pytest

from hebbcore.errors import SpecError
from hebbcore.models import paper_net
from hebbcore.spec import dumps_toml, loads_spec, parse_spec, spec_to_table

GOOD = """
name = "t"
[data]
source = "synthetic"
[data.options]
n_train = 100
[[layers]]
name = "c1"
type = "conv"
out_channels = 4
kernel_size = 3
[layers.hebbian]
rule = "wta"
"""


def problems_of(text, registry):
    with pytest.raises(SpecError) as info:
        loads_spec(text, registry, source="x.toml")
    err = info.value
    assert "\n" not in str(err)
    return err.problems, str(err)


def test_good_spec_defaults(registry):
    spec = loads_spec(GOOD, registry)
    layer = spec.layers[0]
    assert layer.train == "hebbian" and layer.hebbian.aggregation == "weighted_mean" and layer.hebbian.lr == 0.1
    assert layer.hebbian.options.update == "decay"
    assert spec.data.options.n_train == 100 and spec.data.options.n_val == 500


def test_all_problems_reported_at_once_with_paths_and_suggestions(registry):
    text = (
        GOOD.replace('rule = "wta"', 'rule = "wtaa"\nlearning_rate = 0.1')
        .replace("kernel_size = 3", 'kernel_size = "3"\nstrid = 2')
        .replace("n_train = 100", "n_trian = 100")
    )
    text += "\n[sgd]\nepochs = 1.5\n[hebian]\nepochs = 1\n"
    problems, msg = problems_of(text, registry)
    joined = " | ".join(problems)
    assert "layers[0] (c1).kernel_size: expected integer, got string '3'" in joined
    assert "layers[0] (c1).strid: unknown key (did you mean 'stride'?)" in joined
    assert "rule: unknown rule 'wtaa' (did you mean 'wta'?)" in joined
    assert "learning_rate: unknown key" in joined
    assert "data.options.n_trian: unknown key (did you mean 'n_train'?)" in joined
    assert "sgd.epochs: expected integer, got number 1.5" in joined
    assert "hebian: unknown key (did you mean 'hebbian'?)" in joined
    assert msg.startswith("x.toml: ")
    assert len(problems) >= 7


def test_type_specific_keys(registry):
    text = GOOD + '\n[[layers]]\ntype = "relu"\nout_channels = 3\n[[layers]]\ntype = "pool"\n'
    problems, _ = problems_of(text, registry)
    assert any("layers[1].out_channels: unknown key for a 'relu' layer" in p for p in problems)
    assert any("layers[2].kernel_size: missing" in p for p in problems)


def test_bad_layer_type_and_mode(registry):
    text = GOOD + '\n[[layers]]\ntype = "convv"\n[[layers]]\ntype = "linear"\nout_features = 2\ntrain = "hebian"\n'
    problems, _ = problems_of(text, registry)
    assert any("layers[1].type" in p and "did you mean 'conv'" in p for p in problems)
    assert any("layers[2].train" in p and "did you mean 'hebbian'" in p for p in problems)


def test_invalid_toml_and_missing_file(registry, tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        loads_spec("[[layers]\n", registry)
    from hebbcore.spec import load_spec

    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.toml", registry)


def test_duplicate_layer_names_and_unknown_source(registry):
    text = GOOD.replace('source = "synthetic"', 'source = "cifar100x"') + '\n[[layers]]\nname = "c1"\ntype = "relu"\n'
    problems, _ = problems_of(text, registry)
    assert any("name 'c1' is used by more than one layer" in p for p in problems)
    assert any("data.source: unknown data source 'cifar100x'" in p for p in problems)


def test_rule_option_validation(registry):
    text = GOOD.replace('rule = "wta"', 'rule = "teacher"\n[layers.hebbian.options]\ngroups_per_clas = 2')
    problems, _ = problems_of(text, registry)
    assert any("options.groups_per_clas: unknown key (did you mean 'groups_per_class'?)" in p for p in problems)


def test_teacher_competition_values(registry, numpy_ops):
    """An enum option is checked when the spec is parsed; options that depend on the data (kernels vs
    classes) when the network is built (or at load, against the spec's own data source)."""
    from hebbcore.network import Network

    text = GOOD.replace(
        'rule = "wta"', 'rule = "teacher"\n[layers.hebbian.options]\ncompetition = "masked"\ngroups_per_class = 2'
    )
    with pytest.raises(SpecError) as info:
        loads_spec(text, registry)
    assert "\n" not in str(info.value)
    assert any(
        "options.competition: expected one of 'none', 'wta', 'masked_wta', got string 'masked' "
        "(did you mean 'masked_wta'?)" in p
        for p in info.value.problems
    ), info.value.problems
    spec = loads_spec(text.replace('"masked"', '"masked_wta"').replace("class = 2", "class = 3"), registry)
    with pytest.raises(SpecError, match="teacher groups need 2 classes x 3"):
        Network(spec, (1, 8, 8), 2, numpy_ops, registry)


@pytest.mark.parametrize("modes", ["HHHHHH", "GGGGGG", "HGRGHG"])
def test_resolved_spec_round_trips(registry, modes):
    spec = parse_spec({"name": "p", "layers": paper_net(modes)}, registry)
    again = loads_spec(dumps_toml(spec_to_table(spec)), registry)
    assert again == spec


def test_sgd_optimizer_and_schedule_validation(registry):
    text = GOOD + '\n[sgd]\nepochs = 3\noptimizer = "adamm"\nlr_milestones = [5, 2]\nlr_decay_after = 4\n'
    problems, _ = problems_of(text, registry)
    joined = " | ".join(problems)
    assert "sgd.optimizer: expected one of 'sgd', 'adam', got string 'adamm' (did you mean 'adam'?)" in joined
    assert "sgd.lr_milestones: expected increasing epochs >= 1, got [5, 2]" in joined
    assert "sgd.lr_decay_after: not used with sgd.lr_milestones" in joined


def test_sgd_schedules(registry):
    step = loads_spec(GOOD + "\n[sgd]\nlr = 1.0\nlr_decay_after = 2\nlr_decay = 0.5\n", registry).sgd
    assert [step.lr_at(e) for e in (1, 2, 3, 4)] == [1.0, 1.0, 0.5, 0.25]
    spec = loads_spec(
        GOOD + '\n[sgd]\nlr = 1.0\nlr_milestones = [1, 3]\nlr_decay = 0.5\noptimizer = "adam"\n', registry
    )
    assert [spec.sgd.lr_at(e) for e in (1, 2, 3, 4, 5)] == [1.0, 0.5, 0.5, 0.25, 0.25]
    assert loads_spec(dumps_toml(spec_to_table(spec)), registry) == spec


# ------------------------------------------------------------------------------------------- aggregations

RULE_LAYER = """
[[layers]]
name = "c"
type = "conv"
out_channels = 10
kernel_size = 3
[layers.hebbian]
rule = "{rule}"
{agg}
"""


@pytest.mark.parametrize(
    "rule,default",
    [
        ("hebb", "weighted_mean"),
        ("decay", "weighted_mean"),
        ("wta", "weighted_mean"),
        ("kwta", "weighted_mean"),
        ("teacher", "weighted_mean"),
        ("oja", "mean"),
        ("sanger", "mean"),
        ("hpca", "mean"),
        ("softhebb", "sum"),
        ("krotov", "sum"),
        ("bcm", "mean"),
        ("chl", "mean"),
    ],
)
def test_a_rule_without_aggregation_gets_its_authors_one(registry, rule, default):
    spec = loads_spec(RULE_LAYER.format(rule=rule, agg=""), registry)
    assert spec.layers[0].hebbian.aggregation == default
    assert f'aggregation = "{default}"' in dumps_toml(spec_to_table(spec))  # the resolved spec shows it


@pytest.mark.parametrize(
    "rule,agg,needle",
    [
        ("softhebb", "weighted_mean", "rule 'softhebb' has signed coefficients; write aggregation = 'sum'"),
        ("krotov", "direction_mean", "rule 'krotov' has signed coefficients; write aggregation = 'sum'"),
        ("hpca", "weighted_mean", "rule 'hpca' has signed coefficients; write aggregation = 'mean'"),
        ("bcm", "weighted_mean", "rule 'bcm' has signed coefficients; write aggregation = 'mean'"),
    ],
)
def test_an_aggregation_wrong_for_the_rule_is_refused(registry, rule, agg, needle):
    with pytest.raises(SpecError, match=needle) as err:
        loads_spec(RULE_LAYER.format(rule=rule, agg=f'aggregation = "{agg}"'), registry, source="s.toml")
    assert "layers[0] (c).hebbian.aggregation:" in str(err.value)


def test_weighted_mean_refuses_a_rule_whose_direction_depends_on_its_coefficient():
    """A non-negative rule whose update direction d_p depends on c_p (separable = False): weighting by c would
    count c twice, so weighted_mean refuses it (no built-in rule is both; a third party's may be)."""
    from hebbcore import hookimpl
    from hebbcore.interfaces import LearningRule
    from hebbcore.plugin_manager import default_registry

    class Entangled(LearningRule):
        name = "entangled"
        coefficients = "nonnegative"
        separable = False

        def post_synaptic(self, ctx):
            return ctx.ops.relu(ctx.dot)

    class Plugin:
        @hookimpl
        def hebbcore_register_rules(self):
            return [Entangled]

    registry = default_registry(plugins=[Plugin()])
    with pytest.raises(SpecError, match=r"'weighted_mean' weighs each position's update by its coefficient, but "
                                        r"rule 'entangled'"):  # fmt: skip
        loads_spec(RULE_LAYER.format(rule="entangled", agg='aggregation = "weighted_mean"'), registry)
    loads_spec(RULE_LAYER.format(rule="entangled", agg='aggregation = "direction_mean"'), registry)  # accepted


def test_use_rule_takes_the_rules_aggregation_and_refuses_a_wrong_one():
    pytest.importorskip("torch")
    from hebbcore.torch_model import HebbianConv2d

    assert HebbianConv2d(3, 4, 3).use_rule("softhebb").aggregation.name == "sum"
    assert HebbianConv2d(3, 4, 3).use_rule("wta").aggregation.name == "weighted_mean"
    with pytest.raises(SpecError, match="signed coefficients"):
        HebbianConv2d(3, 4, 3).use_rule("krotov", aggregation="weighted_mean")


def test_paths_in_a_spec_file_are_relative_to_its_folder(tmp_path, registry, monkeypatch):
    import numpy as np

    from hebbcore.spec import load_spec

    folder = tmp_path / "specs"
    (folder / "data").mkdir(parents=True)
    np.savez(folder / "data" / "d.npz", x=np.zeros((20, 1, 4, 4), np.float32), y=np.arange(20) % 2)
    (folder / "s.toml").write_text(
        '[data]\nsource = "npz"\n[data.options]\npath = "data/d.npz"\n'
        '[[layers]]\nname = "c"\ntype = "conv"\nout_channels = 2\nkernel_size = 2\n'
    )
    monkeypatch.chdir(tmp_path)  # not the spec's folder
    spec = load_spec("specs/s.toml", registry)
    assert spec.data.options.path == str(folder / "data" / "d.npz")
    assert f'path = "{folder / "data" / "d.npz"}"' in dumps_toml(spec_to_table(spec))  # validate shows it absolute
    given = load_spec("specs/s.toml", registry, overrides=['data.options.path="specs/data/d.npz"'])
    assert given.data.options.path == str(folder / "data" / "d.npz")  # a --set path: from the current folder


def test_a_wrong_required_value_is_reported_once(registry):
    text = '[[layers]]\nname = "c"\ntype = "conv"\nout_channels = "x"\nkernel_size = 3\n'
    with pytest.raises(SpecError) as err:
        loads_spec(text, registry)
    assert err.value.problems == ["layers[0] (c).out_channels: expected integer, got string 'x'"]


BASE_SPEC = """
name = "base"
[data]
source = "npz"
[data.options]
path = "d.npz"
[hebbian]
epochs = 2
[[layers]]
name = "conv1"
type = "conv"
out_channels = 8
kernel_size = 3
[layers.hebbian]
rule = "wta"
"""


def test_extends_merges_tables_and_resolves_each_files_paths(tmp_path, registry):
    import numpy as np

    from hebbcore.spec import load_spec

    (tmp_path / "base").mkdir()
    np.savez(tmp_path / "base" / "d.npz", x=np.zeros((20, 1, 6, 6), np.float32), y=np.arange(20) % 2)
    (tmp_path / "base" / "base.toml").write_text(BASE_SPEC)
    (tmp_path / "child.toml").write_text('extends = "base/base.toml"\nname = "child"\n[hebbian]\nbatch_size = 8\n')
    spec = load_spec(tmp_path / "child.toml", registry)
    assert (spec.name, spec.hebbian.epochs, spec.hebbian.batch_size) == ("child", 2, 8)  # table merged key by key
    assert spec.data.options.path == str(tmp_path / "base" / "d.npz")  # the base's path, against the base's folder
    assert spec.layers[0].options.out_channels == 8
    # a child on another data source starts from that source's defaults, not the base source's options
    (tmp_path / "other.toml").write_text('extends = "base/base.toml"\n[data]\nsource = "synthetic"\n')
    other = load_spec(tmp_path / "other.toml", registry)
    assert other.data.source == "synthetic" and other.data.options == type(other.data.options)()


def test_settings_override_values_and_layers_by_name(tmp_path, registry):
    from hebbcore.spec import load_spec

    (tmp_path / "s.toml").write_text(BASE_SPEC.replace('source = "npz"', 'source = "synthetic"').replace(
        '[data.options]\npath = "d.npz"\n', ""))  # fmt: skip
    spec = load_spec(tmp_path / "s.toml", registry,
                     overrides=["hebbian.epochs=1", "layers.conv1.hebbian.lr=0.05", "data.options.n_train=50",
                                "layers.conv1.hebbian.rule=kwta"])  # fmt: skip
    assert spec.hebbian.epochs == 1 and spec.data.options.n_train == 50
    assert spec.layers[0].hebbian.lr == 0.05 and spec.layers[0].hebbian.rule == "kwta"  # a bare word is a string
    with pytest.raises(SpecError, match="no layer named 'conv2' \\(did you mean 'conv1'\\?\\)"):
        load_spec(tmp_path / "s.toml", registry, overrides=["layers.conv2.out_channels=3"])
    with pytest.raises(SpecError, match="hebbian.epoch: unknown key \\(did you mean 'epochs'\\?\\)"):
        load_spec(tmp_path / "s.toml", registry, overrides=["hebbian.epoch=3"])
    with pytest.raises(SpecError, match="expected key.path=value"):
        load_spec(tmp_path / "s.toml", registry, overrides=["hebbian.epochs"])


def test_extends_chains_are_shown_and_cycles_refused(tmp_path, registry):
    from hebbcore.spec import load_spec

    (tmp_path / "a.toml").write_text('extends = "b.toml"\n')
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n')
    with pytest.raises(SpecError, match="a.toml extends .*b.toml extends .*a.toml: extends .* again: a cycle"):
        load_spec(tmp_path / "a.toml", registry)
    (tmp_path / "c.toml").write_text('extends = "missing.toml"\nname = "c"\n')
    with pytest.raises(SpecError, match="c.toml extends .*missing.toml: file does not exist"):
        load_spec(tmp_path / "c.toml", registry)


def test_a_batchnorm_between_the_hebbian_layers_and_the_sgd_classifier_trains_with_it(tmp_path, registry):
    """Left without train above the last Hebbian layer, it would stay the identity in both phases: it trains
    with the SGD phase it feeds (the resolved spec says so); between Hebbian layers it keeps its statistics."""
    pytest.importorskip("torch")
    from hebbcore.runner import run

    table = {
        "seed": 1,
        "data": {"source": "synthetic", "options": {"n_train": 120, "n_val": 20, "n_test": 20, "size": 8}},
        "hebbian": {"epochs": 1, "batch_size": 40},
        "sgd": {"epochs": 1, "batch_size": 20, "lr": 0.05},
        "layers": [
            {"name": "c1", "type": "conv", "out_channels": 4, "kernel_size": 3, "hebbian": {"rule": "wta"}},
            {"name": "bn_mid", "type": "batchnorm"},
            {"name": "c2", "type": "conv", "out_channels": 4, "kernel_size": 3, "hebbian": {"rule": "wta"}},
            {"name": "pool", "type": "pool", "kernel_size": 2},
            {"name": "bn", "type": "batchnorm"},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "out_features": 10},
        ],
    }
    spec = parse_spec(table, registry)
    assert [(l.name, l.train) for l in spec.layers if l.type == "batchnorm"] == [("bn_mid", ""), ("bn", "sgd")]
    assert 'train = "sgd"' in dumps_toml(spec_to_table(spec)).split('name = "bn"')[1].split("[[layers]]")[0]
    weights = run(spec, registry, out_dir=tmp_path, progress=False).network.state_dict()
    assert not np.allclose(weights["bn.weight"], 1.0) and not np.allclose(weights["bn.running_var"], 1.0)
    assert np.allclose(weights["bn_mid.weight"], 1.0) and not np.allclose(weights["bn_mid.running_var"], 1.0)
    no_sgd = parse_spec({**table, "phases": ["hebbian"]}, registry)  # nothing to feed: left as written
    assert [l.train for l in no_sgd.layers if l.type == "batchnorm"] == ["", ""]


def test_a_layers_train_mode_read_from_toml_is_the_modes_own_object(registry):
    from hebbcore.specfile import toml_table

    text = (
        'name = "x"\n[[layers]]\nname = "c"\ntype = "conv"\nout_channels = 2\nkernel_size = 3\ntrain = "'
        + "".join(["sg", "d"])
        + '"\n[[layers]]\nname = "f"\ntype = "flatten"\n[[layers]]\nname = "o"\ntype = "linear"\nout_features = 2\n'
    )
    spec = parse_spec(toml_table(text, "x.toml"), registry)
    assert spec.layers[0].train is "sgd"  # noqa: F632 (the identity is the point of this test)
