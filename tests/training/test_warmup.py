"""`python -m cnnviz warmup`: its models are exactly the pages' defaults, and after a (tiny) warm-up
the pages show their results from the disk cache without a single training step."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import training
from cnnviz.__main__ import main
from cnnviz.catalogue import PROJECT_ROOT
from cnnviz.lessons import augmentation, lenet_vs_relu
from cnnviz.training import engine, warmup
from widgets import ui


def _page(name: str) -> AppTest:
    return AppTest.from_file(str(PROJECT_ROOT / "app_pages" / name), default_timeout=180).run()


class _Recorder:
    """Stands in for `ui.train_with_progress`: remembers the configs a page asks for, trains nothing."""

    def __init__(self):
        self.configs = []

    def __call__(self, config, *, key, fresh=False, data=None):
        self.configs.append(config)
        return None


@pytest.fixture
def recorder(monkeypatch):
    fake = _Recorder()
    monkeypatch.setattr(ui, "train_with_progress", fake)
    return fake


def _keys(items) -> list[str]:
    return [item.config.key() for item in items]


# --------------------------------------------------------------------------------------------
# The warm-up's models are the ones each page asks for with untouched widgets
# --------------------------------------------------------------------------------------------

def test_train_page_asks_for_the_warmup_default(recorder):
    at = _page("train.py")
    at.button(key="train_start").click().run()
    assert not at.exception
    assert [c.key() for c in recorder.configs] == _keys(warmup.page_items("train"))
    config = recorder.configs[0]
    assert (config.limit_train, config.limit_test, config.epochs, config.dataset) == (10_000, 2_000, 5,
                                                                                    "fashion_mnist")


def test_lenet_vs_relu_page_asks_for_the_warmup_default(monkeypatch):
    asked = []

    def fake_train_seeds(config, seeds, on_progress=None, **_):
        asked.extend(training.seed_configs(config, seeds))
        return []  # Nothing trained: the page says so and stops.

    monkeypatch.setattr(training, "train_seeds", fake_train_seeds)
    at = _page("lenet_vs_relu.py")
    at.button(key="lvr_run").click().run()
    assert not at.exception
    # The page stops after the first model the (fake) engine did not train: its seeds open the plan.
    plan = _keys(warmup.page_items("lenet_vs_relu"))
    assert asked and [c.key() for c in asked] == plan[:len(asked)]
    assert len(plan) == len(lenet_vs_relu.VARIANTS) * len(lenet_vs_relu.ComparisonSettings().seeds)


def test_transfer_page_asks_for_the_warmup_pretraining(recorder):
    at = _page("transfer.py")
    at.button(key="transfer_pretrain_button").click().run()
    assert not at.exception
    assert recorder.configs[0].key() == _keys(warmup.page_items("transfer"))[0]


def test_augmentation_page_asks_for_the_warmup_variants(monkeypatch):
    # The lab trains every seed of every variant through the shared seeds panel: record its work.
    asked = []

    def fake_panel(work, **_):
        variants, seeds = work.args[:2]  # functools.partial(train_variants, variants, seeds)
        asked.extend(augmentation.seed_variant(v, s).config for v in variants for s in seeds)
        return None  # Nothing trained.

    monkeypatch.setattr(ui, "train_seeds_with_progress", fake_panel)
    at = _page("augmentation.py")
    at.button(key="aug_fit_train").click().run()
    assert not at.exception
    assert [c.key() for c in asked] == _keys(warmup.page_items("augmentation"))
    assert len(warmup.page_items("augmentation")) == len(augmentation.DEFAULT_VARIANTS) * len(augmentation.DEFAULT_SEEDS)


def test_plan_has_each_config_once_and_rejects_unknown_pages():
    plan = warmup.warmup_plan(tiny=True)
    assert len(set(_keys(plan))) == len(plan)
    assert {item.page for item in plan} == set(warmup.PAGES)
    # The transfer page's defaults: pre-training per seed, one transfer run, three strategies per size and seed.
    transfer_items = [item for item in plan if item.page == "transfer"]
    assert len(transfer_items) == 3 + 1 + 3 * 2 * 3
    with pytest.raises(ValueError, match="Unknown page"):
        warmup.page_items("nope")


def test_tiny_sizes_are_tiny_and_differ_from_the_defaults():
    tiny = warmup.warmup_plan(tiny=True)
    assert set(_keys(tiny)).isdisjoint(_keys(warmup.warmup_plan()))
    for item in tiny:
        assert item.config.limit_train is not None and item.config.limit_train <= 300
        assert item.config.epochs <= 4


# --------------------------------------------------------------------------------------------
# A tiny warm-up through the command, then the page loads its result without training
# --------------------------------------------------------------------------------------------

def _no_training(*args, **kwargs):
    raise AssertionError("the engine was asked to train although the warm-up cached this model")


def test_tiny_warmup_fills_the_cache_and_the_train_page_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    config = warmup.train_page_config(tiny=True)
    assert training.load_cached(config) is None

    assert main(["warmup", "--only", "train", "--tiny"]) == 0
    printed = capsys.readouterr().out
    assert "[1/1] Train a small CNN: default network" in printed
    assert "epoch 1/1" in printed
    assert "trained and stored in" in printed and " s · test accuracy" in printed
    assert "1 of 1 models ready (1 trained now, 0 already cached), 0 failed" in printed
    assert (tmp_path / "training" / config.key() / "result.json").is_file()

    assert main(["warmup", "--only", "train", "--tiny", "--list"]) == 0
    assert f"cached   Train a small CNN: default network (ReLU CNN) (config {config.key()[:8]})" \
        in capsys.readouterr().out

    # From here on any training step fails the test; the in-memory job cache starts empty.
    monkeypatch.setattr(engine, "_train_now", _no_training)
    ui.job_registry.clear()
    at = _page("train.py")
    at.number_input(key="train_limit_train").set_value(warmup.TINY_TRAIN_IMAGES)
    at.number_input(key="train_limit_test").set_value(warmup.TINY_TEST_IMAGES)
    at.number_input(key="train_epochs").set_value(warmup.TINY_EPOCHS).run()
    # The cached run is shown as soon as the settings match it, without pressing Train.
    assert not at.exception, at.exception
    assert at.session_state["train_result"].config.key() == config.key()
    assert not any("Press **Train**" in element.value for element in at.info)
    # Pressing Train does not train either: the stored model is the result.
    at.button(key="train_start").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    result = at.session_state["train_result"]
    assert result.from_cache and result.config.key() == config.key()
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Test accuracy"] == f"{result.test_accuracy:.1%}"
    assert any("stored model is reused" in caption.value for caption in at.caption)
    # A second warm-up finds everything cached and trains nothing either.
    assert main(["warmup", "--only", "train", "--tiny"]) == 0
    assert "1 of 1 models ready (0 trained now, 1 already cached)" in capsys.readouterr().out


def test_a_failing_model_is_reported_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    items = warmup.warmup_plan(["augmentation"], tiny=True)[:2]
    lines, stored = [], set()

    def fake_train(config, on_progress=None):
        if config.key() == items[0].config.key():
            raise ValueError("no data")
        stored.add(config.key())  # As the engine stores a finished run.
        return training.TrainResult(config=config, model=None, history={}, test_accuracy=0.5,
                                    stopped_reason="finished", class_names=("a", "b"))

    monkeypatch.setattr(training, "is_cached", lambda config, **_: config.key() in stored)
    monkeypatch.setattr(warmup.cache, "pin", lambda config: config.key() in stored)
    records = warmup.run_warmup(items, out=lines.append, train_fn=fake_train)
    assert [record.ok for record in records] == [False, True]
    assert any("FAILED" in line and "ValueError: no data" in line for line in lines)
    assert warmup.summary(records).startswith("1 of 2 models ready (1 trained now, 0 already cached), 1 failed")


@pytest.mark.slow
def test_tiny_warmup_of_the_other_pages_lets_them_show_results_without_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    pages = ["lenet_vs_relu", "transfer", "augmentation"]
    count = len(warmup.warmup_plan(pages, tiny=True))
    assert main(["warmup", "--tiny", *(f"--only={page}" for page in pages)]) == 0
    assert f"{count} of {count} models ready ({count} trained now" in capsys.readouterr().out
    monkeypatch.setattr(engine, "_train_now", _no_training)
    ui.job_registry.clear()

    lenet = _page("lenet_vs_relu.py")
    lenet.select_slider(key="lvr_train_images").set_value(warmup.TINY_LENET_TRAIN_IMAGES)
    lenet.select_slider(key="lvr_test_images").set_value(warmup.TINY_TEST_IMAGES)
    lenet.select_slider(key="lvr_updates").set_value(warmup.TINY_LENET_UPDATES)
    lenet.slider(key="lvr_seeds").set_value(len(warmup.TINY_LENET_SEEDS)).run()
    # No click on Run: every model of these settings is on disk, so the results show at once.
    assert not lenet.exception, lenet.exception
    assert not lenet.error, [e.value for e in lenet.error]
    assert [h.value for h in lenet.header][:3] == ["Head to head", "Why", "Inside: the first layer's activations"]

    # The experiment's sizes first: the pre-trained model is on disk, so the later sections appear.
    transfer_page = _page("transfer.py")
    for key, value in (("transfer_pretrain_per_class", 20), ("transfer_test_per_class", 10),
                       ("transfer_min_updates", warmup.TINY_TRANSFER["min_transfer_updates"])):
        transfer_page.select_slider(key=key).set_value(value)
    for key, value in (("transfer_pretrain_epochs", 1), ("transfer_epochs", 1)):
        transfer_page.slider(key=key).set_value(value)
    transfer_page.run()
    assert not transfer_page.exception, transfer_page.exception
    for key, value in (("transfer_transfer_per_class", 10), ("transfer_largest", 30), ("transfer_smallest", 6)):
        transfer_page.select_slider(key=key).set_value(value)
    transfer_page.slider(key="transfer_size_steps").set_value(2).run()
    assert not transfer_page.exception, transfer_page.exception
    assert not transfer_page.error, [e.value for e in transfer_page.error]
    # Every section shows its results at once: nothing asks to press a button.
    assert not [i.value for i in transfer_page.info if "Press" in i.value]
    assert "What the measurements show" in [s.value for s in transfer_page.subheader]

    lab = _page("augmentation.py")
    lab.select_slider(key="aug_fit_images").set_value(warmup.TINY_OVERFIT["limit_train"])
    lab.slider(key="aug_fit_epochs").set_value(warmup.TINY_OVERFIT["epochs"]).run()
    assert not lab.exception, lab.exception
    assert not lab.error, [e.value for e in lab.error]
    assert not [i.value for i in lab.info if "Train the variants" in i.value]
    tables = [frame.value for frame in lab.dataframe if "gap (points)" in frame.value.columns]
    assert len(tables) == 1 and len(tables[0]) == len(augmentation.DEFAULT_VARIANTS) * len(augmentation.DEFAULT_SEEDS)


def test_the_disk_cache_holds_the_whole_warmup_with_room_for_a_class():
    """A warm-up must not evict its own models: the pinned budget holds the full and the tiny plan
    (and a changed plan beside the old one); student runs have a budget of their own."""
    from cnnviz.training import cache, warmup

    assert 2 * len(warmup.warmup_plan()) + len(warmup.warmup_plan(tiny=True)) <= cache.MAX_PINNED_ENTRIES
    assert cache.MAX_DISK_ENTRIES >= 100


def test_the_seeds_of_each_default_config_form_one_group_as_their_page_trains_them():
    """Warm-up trains consecutive seeds of one config together (`train_seeds`, as the pages do);
    the oracle is `training.seed_configs` itself: every group's items are exactly its configs."""
    from cnnviz import training

    plan = warmup.warmup_plan(["lenet_vs_relu", "transfer", "augmentation"], tiny=True)
    index, sizes = 0, []
    while index < len(plan):
        group = warmup._seed_group(plan, index)
        if group is None:
            sizes.append(1)
            index += 1
            continue
        per_seed, seeds = group
        configs = training.seed_configs(plan[index].config, seeds, warm_start_per_seed=per_seed)
        assert [c.key() for c in configs] == [item.config.key() for item in plan[index:index + len(seeds)]]
        sizes.append(len(seeds))
        index += len(seeds)
    # LeNet vs ReLU: 6 models x 2 seeds; transfer: 3 pre-training seeds, one single run, then
    # 2 sizes x 3 strategies x 3 seeds (warm starts per seed); augmentation: 4 variants x 3 seeds.
    assert sizes == [2] * 6 + [3, 1] + [3] * 6 + [3] * 4
