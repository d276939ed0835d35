"""The transfer-learning page, driven with AppTest on a tiny configuration (bundled sample, offline)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

PAGE = str(Path(__file__).resolve().parents[2] / "app_pages" / "transfer.py")


def _page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=180)


def _make_tiny(at: AppTest) -> AppTest:
    """Smallest pre-training sizes and one epoch, reachable through the page's own widgets."""
    at.select_slider(key="transfer_pretrain_per_class").set_value(20)
    at.select_slider(key="transfer_test_per_class").set_value(10)
    at.slider(key="transfer_pretrain_epochs").set_value(1)
    at.slider(key="transfer_epochs").set_value(1)
    at.select_slider(key="transfer_min_updates").set_value(8)
    return at.run()


def _make_transfer_tiny(at: AppTest) -> AppTest:
    """Smallest transfer sets (these widgets appear once the network is pre-trained)."""
    at.select_slider(key="transfer_transfer_per_class").set_value(10)
    at.select_slider(key="transfer_smallest").set_value(6)
    at.select_slider(key="transfer_largest").set_value(30)
    at.slider(key="transfer_size_steps").set_value(2)
    at.slider(key="transfer_seeds").set_value(2)
    return at.run()


def test_page_opens_with_the_seeds_split_and_waits_for_the_pretrain_button():
    at = _page().run()
    assert not at.exception
    assert at.multiselect(key="transfer_pretrain_classes").value == [3, 4, 5, 6, 7, 8, 9]
    assert at.multiselect(key="transfer_transfer_classes").value == [0, 1, 2]
    remap = at.dataframe[0].value
    assert list(remap["Class"][-3:]) == ["T-shirt/top", "Trouser", "Pullover"]
    assert list(remap["Label in its run"]) == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]
    assert any("Pre-train the network" in info.value for info in at.info)


@pytest.mark.parametrize("pretrain, transfer_classes, message", [
    ([3, 4, 5, 0], [0, 1, 2], "must not share classes"),
    ([3, 4, 5], [], "transfer set is empty"),
    ([3], [0, 1], "at least two pre-training classes"),
])
def test_an_invalid_split_is_explained_on_the_page(pretrain, transfer_classes, message):
    at = _page().run()
    at.multiselect(key="transfer_pretrain_classes").set_value(pretrain)
    at.multiselect(key="transfer_transfer_classes").set_value(transfer_classes)
    at.run()
    assert not at.exception
    assert any(message in error.value for error in at.error)
    assert not at.button  # The page stopped before any training control.


@pytest.mark.slow
def test_tiny_experiment_runs_end_to_end_through_every_section():
    at = _make_tiny(_page().run())
    assert not at.exception
    at.button(key="transfer_pretrain_button").click().run()
    assert not at.exception and not at.error
    at = _make_transfer_tiny(at)
    # Section 3: one row per unseen class, each row's percentages summing to 100.
    predicted_as = at.dataframe[1].value
    assert list(predicted_as["Unseen class"]) == ["T-shirt/top", "Trouser", "Pullover"]
    seen = ["Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert predicted_as[seen].sum(axis=1).round(6).tolist() == [100.0] * 3

    # Section 4: freeze the convolutional block (the default), retrain, check the frozen weights.
    assert at.select_slider(key="transfer_freeze").value == 6
    at.button(key="transfer_retrain_button").click().run()
    assert not at.exception and not at.error
    assert any("bit for bit" in success.value for success in at.success)
    assert any(chart.proto.spec for chart in at.get("plotly_chart"))

    # Section 5: the split is similar, so the small case's strategy (frozen features) against fine-tuning
    # and training from scratch, at two sizes (6 and 30 images), 2 seeds each.
    assert any("at most **30 images per class**" in md.value for md in at.markdown)
    at.button(key="transfer_compare_button").click().run()
    assert not at.exception and not at.error
    curves = at.dataframe[-1].value
    assert curves["Transfer images"].tolist() == [6, 6, 6, 30, 30, 30]
    assert curves["Strategy"].tolist()[:3] == ["Frozen features, new output layer only", "Fine-tune everything",
                                               "Train from scratch"]
    assert curves["Mean %"].between(0, 100).all() and (curves["Updates"] >= 8).all()
    assert all(len(per_seed.split()) == 2 for per_seed in curves["Per seed %"])
    assert any("weight updates" in caption.value for caption in at.caption)
    # Both sizes are small (2 and 10 per class): only the small case is measured, each verdict from compare.
    verdicts = [md.value for md in at.markdown if "`frozen_features vs " in md.value]
    assert len(verdicts) == 2 and all("With 6 transfer images (2 per class, small)" in v for v in verdicts)
    assert all(any(kind in v for kind in ("better", "worse", "no measurable difference", "undecided"))
               for v in verdicts)
    assert sum("measured here" in md.value for md in at.markdown) == 1
    assert sum("**Keep:**" in md.value for md in at.markdown) == 4

    # A revisit is served from the caches: nothing trains again.
    again = _make_transfer_tiny(_make_tiny(_page().run()))
    assert not again.exception
    assert len(again.success) == 1 and len(again.dataframe) == len(at.dataframe)
    assert again.dataframe[-1].value.equals(curves)
