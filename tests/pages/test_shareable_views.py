"""Shareable views on every lesson page: a state, its URL, and the same state back.

(The convolution lab, calculator and augmentation lab also have their own round-trip tests.)
Each case changes a few controls, takes the query parameters the page published, opens the page
afresh from that URL and checks every shared control comes back with the same value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

VIEWS = Path(__file__).resolve().parents[2] / "app_pages"

CASES = {
    "convolution.py": [("selectbox", "conv_image_scale", "Viridis"), ("toggle", "conv_relu", True)],
    "calculator.py": [("toggle", "calc_log_scale", True)],
    "augmentation.py": [("slider", "aug_fit_epochs", 7), ("select_slider", "aug_fit_images", 500),
                            ("multiselect", "aug_fit_variants", ["baseline", "dropout"]),
                            ("slider", "aug_drop_units", 8), ("slider", "aug_bn_batch", 4),
                            ("number_input", "aug_bn_seed", 3)],
    "train.py": [("number_input", "train_epochs", 3), ("selectbox", "train_optimizer", "sgd"),
                     ("number_input", "train_learning_rate", 0.05)],
    "lenet_vs_relu.py": [("slider", "lvr_seeds", 2), ("select_slider", "lvr_updates", 240),
                         ("select_slider", "lvr_train_images", 1_280)],
    "transfer.py": [("slider", "transfer_epochs", 7), ("slider", "transfer_pretrain_epochs", 4),
                             ("multiselect", "transfer_transfer_classes", [0, 1])],
}


def _open(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(VIEWS / page), default_timeout=120)
    for name, value in (query or {}).items():
        at.query_params[name] = value
    return at.run()


def _no_state_api_warning(at: AppTest) -> None:
    assert not at.exception
    assert not [w for w in at.warning if "Session State API" in str(w.value)]


@pytest.mark.parametrize("page", sorted(CASES))
def test_a_view_survives_its_own_link(page):
    at = _open(page)
    _no_state_api_warning(at)
    for kind, key, value in CASES[page]:
        getattr(at, kind)(key=key).set_value(value)
    at.run()
    _no_state_api_warning(at)
    query = {name: value for name, value in at.query_params.items()}
    shared = {name: at.session_state[name] for name in query if name in at.session_state}
    for _, key, value in CASES[page]:
        assert shared[key] == value, f"{key} is not in the link"

    again = _open(page, query)
    _no_state_api_warning(again)
    for name, value in shared.items():
        assert again.session_state[name] == value, name


@pytest.mark.parametrize("page, bad", [
    ("train.py", {"train_epochs": "-4", "train_optimizer": "adamw", "nonsense": "1"}),
    ("lenet_vs_relu.py", {"lvr_seeds": "1e9", "lvr_train_images": "7", "lvr_updates": "-3"}),
    ("transfer.py", {"transfer_transfer_classes": "[0,0,99]", "transfer_freeze": "99",
                              "transfer_largest": "{"}),
])
def test_invalid_link_parameters_are_ignored_with_a_notice(page, bad):
    defaults = _open(page)
    at = _open(page, bad)
    _no_state_api_warning(at)
    notice = " ".join(str(caption.value) for caption in at.caption)
    for name in bad:
        if name == "nonsense":  # A name the page does not know is counted, never echoed (issue 14).
            assert name not in notice and "1 unknown parameter" in notice
            continue
        assert name in notice
        if name in defaults.session_state:
            assert at.session_state[name] == defaults.session_state[name]


def test_a_custom_training_stack_travels_in_the_link():
    at = _open("train.py")
    at.selectbox(key="train_preset").set_value("custom").run()
    _no_state_api_warning(at)
    stack = at.session_state["train_custom_stack"]
    assert stack and stack[-1]["type"] == "dense"
    # A different stack, as a link made elsewhere would carry it.
    other = [{"type": "flatten"}, {"type": "dense", "units": 10, "activation": "softmax"}]
    query = {name: value for name, value in at.query_params.items()}
    assert "train_custom_stack" in query
    query["train_custom_stack"] = json.dumps(other)
    again = _open("train.py", query)
    _no_state_api_warning(again)
    assert again.session_state["train_preset"] == "custom"
    assert again.session_state["train_custom_stack"] == other
    assert any("7,850 parameters" in str(item.value) for item in again.markdown)  # 784·10 + 10.

