"""Fuzzing the spec loader: any input gives a valid spec or a one-line SpecError, never a traceback."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from hebbcore.errors import SpecError
from hebbcore.plugin_manager import default_registry
from hebbcore.spec import RunSpec, loads_spec, parse_spec

LAYER_TYPES = default_registry().tables["layer"]

KEYS = sorted(
    {
        "name",
        "seed",
        "init_weights",
        "phases",
        "data",
        "hebbian",
        "sgd",
        "layers",
        "source",
        "options",
        "transforms",
        "epochs",
        "batch_size",
        "lr",
        "rule",
        "aggregation",
        "type",
        "train",
        "response",
        "groups_per_class",
        "common",
        "competition",
        "update",
        "n_train",
        "path",
        "momentum",
        "nesterov",
        "keep_best",
        "weight_decay",
        "check_every",
    }
    | {f.name for cls in LAYER_TYPES.values() for f in dataclasses.fields(cls.Options)}
    | {"strid", "hebian", "ruel", ""}
)
WORDS = [
    "conv",
    "linear",
    "pool",
    "relu",
    "flatten",
    "batchnorm",
    "dropout",
    "wta",
    "teacher",
    "hebb",
    "decay",
    "weighted_mean",
    "mean",
    "sum",
    "synthetic",
    "npz",
    "hebbian",
    "sgd",
    "frozen",
    "random",
    "cosine",
    "x",
]

scalars = (
    st.integers(-3, 300)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | st.sampled_from(WORDS)
    | st.text(max_size=5)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)
layer = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(LAYER_TYPES)) | scalars},
    optional={
        k: values
        for k in (
            "name",
            "out_channels",
            "out_features",
            "kernel_size",
            "stride",
            "train",
            "hebbian",
            "p",
            "response",
            "eps",
        )
    },
)
tables = st.fixed_dictionaries(
    {},
    optional={
        "layers": st.lists(layer | values, max_size=4) | values,
        "data": values,
        "hebbian": values,
        "sgd": values,
        "name": values,
        "seed": values,
        "phases": values,
        "init_weights": values,
        "junk": values,
    },
)


def check(fn):
    try:
        spec = fn()
    except SpecError as exc:
        assert "\n" not in str(exc) and str(exc)
        return None
    assert isinstance(spec, RunSpec)
    return spec


@settings(max_examples=300)
@given(table=tables)
def test_any_table_is_a_spec_or_a_spec_error(registry, table):
    check(lambda: parse_spec(table, registry))


@settings(max_examples=200)
@given(
    text=st.text(max_size=200)
    | st.lists(
        st.sampled_from(
            [
                "[[layers]]",
                'type = "conv"',
                "out_channels = 3",
                "kernel_size = 2",
                "[layers.hebbian]",
                'rule = "wta"',
                "[data]",
                "lr = -1",
                "stride = 0",
                "[hebbian]",
                "epochs = 1.5",
                "x = [1, 'a']",
                "[sgd]",
                "= 3",
                '"',
            ]
        ),
        max_size=12,
    ).map("\n".join)
)
def test_any_text_is_a_spec_or_a_spec_error(registry, text):
    check(lambda: loads_spec(text, registry))


# ------------------------------------------------------------------------------------------- invalid values

BASE = {
    "name": "ok",
    "seed": 1,
    "data": {"source": "synthetic", "options": {"n_train": 64, "n_val": 8, "n_test": 8, "size": 12}},
    "hebbian": {"epochs": 1, "batch_size": 16},
    "sgd": {"epochs": 1, "lr": 0.01},
    "layers": [
        {"name": "conv1", "type": "conv", "out_channels": 8, "kernel_size": 3, "hebbian": {"rule": "wta"}},
        {"name": "bn", "type": "batchnorm"},
        {"name": "flat", "type": "flatten"},
        {"name": "drop", "type": "dropout"},
        {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
    ],
}
negative = st.integers(-(10**12), -1)
non_positive = st.integers(-(10**12), 0)
bad_float = st.floats(max_value=0.0) | st.sampled_from([float("nan"), float("inf"), float("-inf")])
non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])
#: (key path in BASE, the message's key, values that must be refused)
INVALID = [
    (("seed",), "seed", negative | st.integers(2**63, 2**70)),
    (
        ("name",),
        "name",
        st.text(min_size=101, max_size=300).filter(lambda t: "\x00" not in t)
        | st.sampled_from(["", ".", "..", "a/b", "../x", "a\\b", "x\ny"]),
    ),
    (("hebbian", "epochs"), "hebbian.epochs", negative | st.booleans()),
    (("hebbian", "batch_size"), "hebbian.batch_size", non_positive),
    (("sgd", "epochs"), "sgd.epochs", negative),
    (("sgd", "lr"), "sgd.lr", bad_float),
    (("sgd", "momentum"), "sgd.momentum", st.floats(1.0, 1e300) | negative | non_finite),
    (("sgd", "weight_decay"), "sgd.weight_decay", st.floats(max_value=-1e-12) | non_finite),
    (("data", "options", "n_train"), "data.options.n_train", non_positive),
    (("data", "options", "n_val"), "data.options.n_val", negative),
    (("data", "options", "n_train"), "the run needs about", st.integers(10**11, 10**15)),
    (("layers", 0, "out_channels"), "out_channels", non_positive),
    (("layers", 0, "out_channels"), "the run needs about", st.integers(10**10, 10**15)),
    (("layers", 0, "kernel_size"), "kernel_size", non_positive | st.integers(13, 10**6)),
    (("layers", 0, "stride"), "stride", negative),
    (("layers", 0, "hebbian", "lr"), "hebbian.lr", bad_float),
    (("layers", 1, "eps"), "eps", bad_float),
    (("layers", 1, "momentum"), "momentum", st.floats(1.0001, 1e300) | negative | non_finite),
    (("layers", 3, "p"), ".p", st.floats(1.0, 1e300) | negative | non_finite),
    (("layers", 4, "out_features"), "out_features", non_positive),
]


def with_value(path, value):
    import copy

    table = copy.deepcopy(BASE)
    node = table
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    return table


@settings(max_examples=300, deadline=None)
@given(case=st.sampled_from(range(len(INVALID))).flatmap(lambda i: st.tuples(st.just(i), INVALID[i][2])))
def test_every_invalid_value_is_refused_naming_its_key(registry, case):
    i, value = case
    path, needle, _ = INVALID[i]
    try:
        parse_spec(with_value(path, value), registry, "s.toml", against_data=True)
    except SpecError as exc:
        assert "\n" not in str(exc) and needle in str(exc), (path, value, str(exc))
        return
    raise AssertionError(f"{'.'.join(map(str, path))} = {value!r} was accepted")


def test_the_base_of_the_invalid_values_is_valid(registry):
    parse_spec(BASE, registry, "s.toml", against_data=True)


@settings(max_examples=30, deadline=None)
@given(depth=st.integers(200, 20000))
def test_deeply_nested_toml_is_one_line(registry, depth):
    text = 'name = "x"\njunk = ' + "[" * depth + "]" * depth + "\n"
    check(lambda: loads_spec(text, registry))
