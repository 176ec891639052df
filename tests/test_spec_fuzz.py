"""Fuzzing the spec loader: any input gives a valid spec or a one-line SpecError, never a traceback."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hebbcore.errors import SpecError
from hebbcore.spec import LAYER_FIELDS, RunSpec, loads_spec, parse_spec

KEYS = sorted({"name", "seed", "init_weights", "phases", "data", "hebbian", "sgd", "layers", "source", "options",
               "transforms", "epochs", "batch_size", "lr", "rule", "aggregation", "type", "train", "response",
               "groups_per_class", "common", "competition", "update", "n_train", "path", "momentum", "nesterov",
               "keep_best", "weight_decay", "check_every"} | {f for fs in LAYER_FIELDS.values() for f in fs}
              | {"strid", "hebian", "ruel", ""})
WORDS = ["conv", "linear", "pool", "relu", "flatten", "batchnorm", "dropout", "wta", "teacher", "hebb", "decay",
         "weighted_mean", "mean", "sum", "synthetic", "npz", "hebbian", "sgd", "frozen", "random", "cosine", "x"]

scalars = (st.integers(-3, 300) | st.floats(allow_nan=True, allow_infinity=True) | st.booleans()
           | st.sampled_from(WORDS) | st.text(max_size=5))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4), max_leaves=12)
layer = st.fixed_dictionaries({"type": st.sampled_from(list(LAYER_FIELDS)) | scalars},
                              optional={k: values for k in ("name", "out_channels", "out_features", "kernel_size",
                                                            "stride", "train", "hebbian", "p", "response", "eps")})
tables = st.fixed_dictionaries({}, optional={
    "layers": st.lists(layer | values, max_size=4) | values,
    "data": values, "hebbian": values, "sgd": values, "name": values, "seed": values, "phases": values,
    "init_weights": values, "junk": values,
})


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
@given(text=st.text(max_size=200) | st.lists(st.sampled_from(
    ["[[layers]]", 'type = "conv"', "out_channels = 3", "kernel_size = 2", "[layers.hebbian]", 'rule = "wta"',
     "[data]", "lr = -1", "stride = 0", "[hebbian]", "epochs = 1.5", "x = [1, 'a']", "[sgd]", "= 3", '"'
     ]), max_size=12).map("\n".join))
def test_any_text_is_a_spec_or_a_spec_error(registry, text):
    check(lambda: loads_spec(text, registry))
