"""URL round trips of page state, and how bad parameters are refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnviz.shareable import MAX_PARAM_LENGTH, Param, read_params, write_params

PARAMS = (
    Param("conv_stride", "int", minimum=1, maximum=4),
    Param("train_lr", "float", minimum=1e-6, maximum=10),
    Param("conv_flip", "bool"),
    Param("conv_preset", "choice", choices=("identity", "sobel_x")),
    Param("calc_stack", "json", validate=lambda value: isinstance(value, list)),
)


@settings(max_examples=60, deadline=None)
@given(stride=st.integers(1, 4), lr=st.floats(1e-6, 10), flip=st.booleans(),
       preset=st.sampled_from(("identity", "sobel_x")),
       stack=st.lists(st.dictionaries(st.sampled_from(["type", "filters"]), st.integers(0, 99)), max_size=4))
def test_state_survives_the_url_round_trip(stride, lr, flip, preset, stack):
    state = {"conv_stride": stride, "train_lr": lr, "conv_flip": flip, "conv_preset": preset, "calc_stack": stack}
    values, rejected = read_params(PARAMS, write_params(PARAMS, state))
    assert rejected == []
    assert values == state


@pytest.mark.parametrize("name, raw", [
    ("conv_stride", "0"), ("conv_stride", "9"), ("conv_stride", "two"),
    ("train_lr", "nan"), ("train_lr", "inf"), ("train_lr", "-1"),
    ("conv_flip", "maybe"), ("conv_preset", "laplace"),
    ("calc_stack", "{not json"), ("calc_stack", '{"a": 1}'), ("calc_stack", "[" * (MAX_PARAM_LENGTH - 1)), ("calc_stack", "[]" + " " * MAX_PARAM_LENGTH),
    ("nonsense", "1"),
], ids=lambda value: value[:20])
def test_invalid_and_unknown_parameters_are_rejected_not_applied(name, raw):
    values, rejected = read_params(PARAMS, {name: raw, "conv_stride": "2"} if name != "conv_stride" else {name: raw})
    assert rejected == [name]
    assert name not in values


def test_app_wide_parameters_are_ignored_quietly():
    values, rejected = read_params(PARAMS, {"presenter": "1", "conv_flip": "1"}, ignore=("presenter",))
    assert values == {"conv_flip": True} and rejected == []
