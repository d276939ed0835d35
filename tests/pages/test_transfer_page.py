"""The transfer-learning page, driven with AppTest on a tiny configuration (bundled sample, offline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from cnnviz import data
from cnnviz.data import example

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


# --------------------------------------------------------------------------------------------
# The ImageNet backbone option (weights=None trains; ImageNet weights offline explain themselves)
# --------------------------------------------------------------------------------------------

def _backbone_page(monkeypatch, tmp_path, data_dir=None) -> AppTest:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # an empty Keras cache
    # No CIFAR-10 anywhere, whatever this machine has (CI's CNNVIZ_DATA_DIR holds the real one),
    # unless `data_dir` is given.
    (tmp_path / "no-data").mkdir(exist_ok=True)
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(data_dir or tmp_path / "no-data"))
    monkeypatch.setenv("CNNVIZ_OFFLINE", "1")
    data.clear_caches()
    at = _page()
    at.session_state["transfer_part"] = "ImageNet backbone (CIFAR-10 or your images)"
    return at.run()


def test_backbone_option_offline_says_so_shows_the_counts_and_stays_disabled(monkeypatch, tmp_path):
    at = _backbone_page(monkeypatch, tmp_path)
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "ImageNet weights of MobileNetV2 are not available" in warning and "switched off" in warning
    assert at.button(key="transfer_backbone_button").disabled
    metrics = {m.label: m.value for m in at.metric}
    # MobileNetV2's base (Keras' count) and the new head: (1280 + 1)·128 + (128 + 1)·10.
    assert metrics["Frozen parameters"] == "2,257,984"
    assert metrics["Trainable parameters"] == f"{1281 * 128 + 129 * 10:,}"
    at.radio(key="transfer_backbone").set_value("vgg16").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Frozen parameters"] == "14,714,688"
    assert metrics["Trainable parameters"] == f"{513 * 128 + 129 * 10:,}"
    assert "ImageNet weights of VGG16 are not available" in " ".join(w.value for w in at.warning)
    # Random weights need nothing: the option trains once CIFAR-10 is there (a look-alike here).
    at.radio(key="transfer_backbone_weights").set_value("random").run()
    assert not at.exception
    assert [w.value for w in at.warning if "CIFAR-10" in w.value] and at.button(key="transfer_backbone_button").disabled
    monkeypatch.setenv("CNNVIZ_DATA_DIR", str(_tiny_cifar_folders(tmp_path / "data", per_class=1)))
    data.clear_caches()
    at.run()
    assert not at.exception and not at.warning
    assert not at.button(key="transfer_backbone_button").disabled
    data.clear_caches()


def _tiny_cifar_folders(root, per_class=10):
    """A CIFAR-10 look-alike as class folders (`cifar10/{train,test}/<class>/*.png`): 32×32 colour noise."""
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in data.spec("cifar10").class_names:
            folder = root / "cifar10" / split / name
            folder.mkdir(parents=True)
            for index in range(per_class):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return root


def _text(at: AppTest) -> str:
    parts = [element.value for kind in ("markdown", "caption", "info", "warning", "error", "success")
             for element in getattr(at, kind)]
    return " ".join(str(part) for part in parts).replace("\\", "")  # Markdown escapes off.


def test_backbone_on_the_example_zip_offers_sizes_from_32_and_sizes_its_head_to_the_zip(monkeypatch, tmp_path):
    at = _backbone_page(monkeypatch, tmp_path)
    at.selectbox(key="transfer_backbone_dataset").set_value("class_folders").run()
    assert not at.exception, at.exception
    # The image sizes offered start at the backbones' smallest input, and the page says why.
    assert at.slider(key="train_folders_size").proto.min == 32 and "at least 32×32 pixels" in _text(at)
    at.button(key="train_folders_use_example").click().run()
    assert not at.exception and not at.error, at.exception
    dataset = at.session_state["train_folders_loaded"][1]
    assert dataset.class_names == example.EXAMPLE_CLASSES and dataset.image_shape == (32, 32, 3)
    text = _text(at)
    title = data.spec(dataset.name).title
    assert title in text and "example_shapes.zip" in text  # The dataset in use is named.
    # 150 images per class, a fifth held out: fewer than the default 200 per class, so every image.
    train, test = sum(dataset.report.train_counts), sum(dataset.report.test_counts)
    assert (train, test) == (360, 90)
    assert f"Trains on **{train}** training images of {title} (every one it has), 3 classes" in text
    assert f"**{test}** test images (its whole test split)." in text
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Frozen parameters"] == "2,257,984"  # MobileNetV2's base, as on CIFAR-10.
    assert metrics["Trainable parameters"] == f"{1281 * 128 + 129 * 3:,}"  # A head of 3 classes.
    assert "ImageNet weights of MobileNetV2 are not available" in text
    assert at.button(key="transfer_backbone_button").disabled
    at.radio(key="transfer_backbone_weights").set_value("random").run()
    assert not at.exception and not at.warning
    assert not at.button(key="transfer_backbone_button").disabled  # The example needs no download.
    assert f"train only a new head on **{title}**" in _text(at)


@pytest.mark.slow
def test_backbone_trains_with_random_weights_through_the_page(monkeypatch, tmp_path):
    at = _backbone_page(monkeypatch, tmp_path, data_dir=_tiny_cifar_folders(tmp_path / "data"))
    at.radio(key="transfer_backbone_weights").set_value("random")
    at.select_slider(key="transfer_backbone_per_class").set_value(10)
    at.slider(key="transfer_backbone_epochs").set_value(1)
    at.run()
    at.button(key="transfer_backbone_button").click().run()
    assert not at.exception and not at.error
    accuracy = {m.label: m.value for m in at.metric}["Test accuracy on CIFAR-10"]
    assert accuracy.endswith("%") and 0 <= float(accuracy[:-1]) <= 100
    data.clear_caches()
