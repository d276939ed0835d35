"""The leaderboard's core (cnnviz/classroom/leaderboard.py, trainers.py) on both stores: the budget and
its refusals, the parameter count against Keras' own, one training for identical entries, failures
and retries, and the ranking with the seed spread."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from scipy import stats

from cnnviz import architecture, training
from cnnviz.classroom import ClassroomStore, Limits
from cnnviz.classroom import leaderboard as lb
from cnnviz.classroom.model import Entry
from cnnviz.classroom.trainers import EntryTrainer, LocalEntryTrainer, open_trainer
from cnnviz.errors import BudgetError, ClassroomInputError, SettingsError

# Tiny, so that a training takes a second or two: 256 training images, one epoch (the bundled
# sample's 2,000 test images, measured once). The class page's test enters the seeds' CNN under it
# too, so that the disk cache trains it once per test session.
TINY = lb.LeaderboardBudget(max_epochs=1, train_images=256)
SEEDS_CNN = lb.preset_entry_config("fashion_relu_cnn", TINY)
SMALL_CNN = [{"type": "conv2d", "filters": 4, "kernel_size": 3, "activation": "relu"},
             {"type": "maxpool2d", "pool_size": 2}, {"type": "flatten"},
             {"type": "dense", "units": 10, "activation": "softmax"}]


def new_class(store: ClassroomStore, budget: lb.LeaderboardBudget = TINY, students: int = 2):
    made = store.create_class("Leaderboard")
    store.set_budget(made.code, made.lecturer_secret, budget.to_mapping())
    return made.code, [store.join(made.code, f"S{i}").student_id for i in range(students)]


@pytest.fixture
def count_trainings(monkeypatch: pytest.MonkeyPatch) -> list[training.TrainConfig]:
    """Every call of `training.train_seeds` (what `train_entry` trains through), by config."""
    calls: list[training.TrainConfig] = []
    real = training.train_seeds

    def counted(config: training.TrainConfig, *args: Any, **kwargs: Any) -> Any:
        calls.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(training, "train_seeds", counted)
    return calls


# --- the budget -----------------------------------------------------------------------------

def test_the_budget_has_the_issue_defaults_and_round_trips_through_the_store(store: ClassroomStore):
    default = lb.LeaderboardBudget.from_mapping({})
    assert (default.max_parameters, default.max_epochs, default.dataset, default.seeds) == (50_000, 3,
                                                                                            "fashion_mnist", 1)
    code, _ = new_class(store, lb.LeaderboardBudget(seeds=3, test_images=500))
    assert lb.LeaderboardBudget.from_mapping(store.class_info(code).budget) == lb.LeaderboardBudget(
        seeds=3, test_images=500)


@pytest.mark.parametrize("mapping, words", [
    ({"max_parameters": 0}, "most parameters"), ({"max_epochs": 2.5}, "most epochs"),
    ({"dataset": "imagenet"}, "dataset"), ({"seeds": 2}, "Seeds per entry"),
    ({"train_images": 10}, "training images"), ({"colour": "red"}, "no setting 'colour'"),
])
def test_a_bad_budget_is_refused_with_its_reason(mapping, words):
    with pytest.raises(ClassroomInputError, match=words):
        lb.LeaderboardBudget.from_mapping(mapping)


# --- the check of an entry ------------------------------------------------------------------

def test_parameters_are_counted_as_keras_counts_them():
    budget = lb.LeaderboardBudget(max_parameters=lb.MAX_PARAMETERS_LIMIT)
    stacks = [SMALL_CNN, architecture.stack_for("fashion_relu_cnn", (28, 28, 1), 10),
              [{"type": "conv2d", "filters": 6, "kernel_size": 5, "padding": "same"}, {"type": "batchnorm"},
               {"type": "globalavgpool2d"}, {"type": "dense", "units": 10}]]
    for layers in stacks:
        config = lb.entry_config(layers, budget)
        keras_count = architecture.build_keras_model((28, 28, 1), lb.entry_train_config(config, budget).stack()
                                                     ).count_params()
        assert lb.check_entry(config, budget) == keras_count


def test_over_the_budget_is_refused_with_the_numbers():
    preset = lb.preset_entry_config("fashion_relu_cnn", TINY)  # 38,254 parameters
    assert lb.check_entry(preset, TINY) == 38_254
    with pytest.raises(ClassroomInputError, match="38,254 parameters.*at most 30,000"):
        lb.check_entry(preset, dataclasses.replace(TINY, max_parameters=30_000))
    with pytest.raises(ClassroomInputError, match="3 epochs.*at most 1"):
        lb.check_entry({**preset, "epochs": 3}, TINY)
    # The server's own resource budget: 60,000 images in batches of 1 is 60,000 weight updates.
    long_run = lb.LeaderboardBudget(max_epochs=1, train_images=60_000)
    with pytest.raises(BudgetError, match="weight updates"):
        lb.check_entry(lb.entry_config(SMALL_CNN, long_run, batch_size=1), long_run)
    with pytest.raises(SettingsError, match="batch size"):
        lb.check_entry(lb.entry_config(SMALL_CNN, TINY, batch_size=512), TINY)
    with pytest.raises(ClassroomInputError, match="10 units"):
        lb.check_entry(lb.entry_config(SMALL_CNN[:-1] + [{"type": "dense", "units": 3}], TINY), TINY)
    with pytest.raises(ClassroomInputError, match="cannot work on Fashion-MNIST"):
        lb.check_entry(lb.entry_config([{"type": "conv2d", "filters": 4, "kernel_size": 40}] + SMALL_CNN[2:], TINY),
                       TINY)
    # An entry made under another budget (the lecturer changed it since).
    with pytest.raises(ClassroomInputError, match="another budget"):
        lb.check_entry(preset, lb.LeaderboardBudget(max_epochs=1, train_images=512))


def test_a_train_page_config_becomes_an_entry_on_the_budgets_data():
    on_page = training.TrainConfig.from_stack(SMALL_CNN, dataset="fashion_mnist", limit_train=10_000, seed=7,
                                              epochs=1, batch_size=64, learning_rate=0.01)
    entry = lb.entry_config_from_train(on_page, TINY)
    trained = lb.entry_train_config(entry, TINY)
    assert (trained.limit_train, trained.limit_test, trained.seed, trained.epochs, trained.batch_size) == (
        256, None, 0, 1, 64)
    assert trained.stack() == [architecture.compact_layer(layer) for layer in on_page.stack()]
    assert trained.learning_rate == 0.01
    # Equal stacks however written (defaults spelled out or not) give one configuration.
    spelled = [dict(layer) for layer in SMALL_CNN]
    spelled[0] |= {"strides": 1, "padding": "valid"}
    assert lb.entry_config(spelled, TINY, batch_size=64, learning_rate=0.01) == entry


# --- training -------------------------------------------------------------------------------

def drain(trainer: EntryTrainer, code: str) -> None:
    assert isinstance(trainer, LocalEntryTrainer)
    assert trainer.wait(300)
    trainer.refresh(code)


def test_identical_entries_train_once_and_all_get_the_result(store: ClassroomStore, count_trainings):
    code, (ana, bo, cy) = new_class(store, students=3)
    same, other = SEEDS_CNN, lb.entry_config(SMALL_CNN, TINY, batch_size=64)
    trainer = open_trainer(store)
    entries = [store.submit_entry(code, ana, same), store.submit_entry(code, bo, same),
               store.submit_entry(code, cy, other)]
    for entry in entries:
        trainer.submit(code, entry.entry_id)
    drain(trainer, code)
    assert sorted(config.batch_size for config in count_trainings) == [64, 128]
    done = store.entries(code)
    assert [e.status for e in done] == ["done"] * 3, [e.message for e in done]
    assert done[0].accuracy == done[1].accuracy and done[0].parameters == done[1].parameters == 38_254
    # The accuracy is the engine's for that configuration (read back from its disk cache).
    oracle = training.train_seeds(lb.entry_train_config(same, TINY), 1, use_cache=True)[0]
    assert oracle.from_cache and done[0].accuracy == pytest.approx(oracle.test_accuracy)
    assert done[0].spread is None  # One seed: no spread.

    # A later identical entry gets the result at once, without a training.
    trainings = len(count_trainings)
    late = store.submit_entry(code, cy, same)
    trainer.submit(code, late.entry_id)
    assert store.entry(code, late.entry_id).accuracy == done[0].accuracy
    assert len(count_trainings) == trainings


def test_a_failed_training_says_so_for_every_twin_and_a_retry_trains(store: ClassroomStore, monkeypatch):
    code, (ana, bo) = new_class(store)
    config = lb.entry_config(SMALL_CNN, TINY, batch_size=64)
    real = training.train_seeds

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(training, "train_seeds", broken)
    trainer = LocalEntryTrainer(store)
    first, twin = store.submit_entry(code, ana, config), store.submit_entry(code, bo, config)
    trainer.submit(code, first.entry_id)
    trainer.submit(code, twin.entry_id)
    drain(trainer, code)
    for entry in store.entries(code):
        assert entry.status == "failed" and entry.message == lb.FAILED_UNEXPECTEDLY  # No internals shown.
    monkeypatch.setattr(training, "train_seeds", real)
    store.update_entry(code, twin.entry_id, status="queued")  # What the page's Retry does.
    trainer.submit(code, twin.entry_id)
    drain(trainer, code)
    assert store.entry(code, twin.entry_id).status == "done"
    assert store.entry(code, first.entry_id).status == "failed"  # Until its own student retries.


def test_an_entry_over_the_budget_the_lecturer_set_since_fails_with_the_reason(store: ClassroomStore,
                                                                               count_trainings):
    made = store.create_class()
    store.set_budget(made.code, made.lecturer_secret, TINY.to_mapping())
    ana = store.join(made.code, "Ana").student_id
    entry = store.submit_entry(made.code, ana, lb.preset_entry_config("fashion_relu_cnn", TINY))
    store.set_budget(made.code, made.lecturer_secret, dataclasses.replace(TINY, max_parameters=10_000).to_mapping())
    updated = lb.train_entry(store, made.code, entry.entry_id)
    assert updated.status == "failed" and "38,254 parameters" in updated.message and "10,000" in updated.message
    assert count_trainings == []


def test_a_long_failure_message_is_cut_to_the_stores_bound(make_store):
    store = make_store(Limits(max_message_chars=60))
    code, (ana, _) = new_class(store)
    entry = store.submit_entry(code, ana, {**lb.entry_config(SMALL_CNN, TINY), "batch_size": 512})
    updated = lb.train_entry(store, code, entry.entry_id)
    assert updated.status == "failed" and len(updated.message) <= 60 and updated.message.endswith("…")


# --- the board ------------------------------------------------------------------------------

def test_the_seed_spread_is_half_the_95_percent_interval_of_the_mean():
    values = [0.80, 0.84, 0.83]
    n, mean = len(values), sum(values) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    assert lb.seed_spread(values) == pytest.approx(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    assert lb.seed_spread([0.8]) is None


def test_the_board_ranks_by_accuracy_with_ties_and_lists_the_rest_after(store: ClassroomStore):
    code, (ana, bo) = new_class(store)
    configs = [lb.entry_config(SMALL_CNN, TINY, batch_size=b) for b in (16, 32, 64, 128)]
    ids = [store.submit_entry(code, ana if i < 2 else bo, c).entry_id for i, c in enumerate(configs[:3])]
    ids.append(store.submit_entry(code, bo, configs[3]).entry_id)
    store.update_entry(code, ids[0], status="done", accuracy=0.70, spread=0.02, parameters=6_810)
    store.update_entry(code, ids[1], status="done", accuracy=0.81, spread=0.01, parameters=6_810)
    store.update_entry(code, ids[2], status="failed", message="Training diverged.")
    store.update_entry(code, ids[3], status="done", accuracy=0.70, parameters=6_810)
    rows = lb.board(store.entries(code))
    assert [(r.entry_id, r.rank) for r in rows] == [(ids[1], 1), (ids[0], 2), (ids[3], 2), (ids[2], None)]
    assert rows[0].accuracy_text == "81.0% ± 1.0%" and rows[2].accuracy_text == "70.0%"
    assert rows[0].stack == "Conv2D 4, 3×3, relu → MaxPool 2×2 → Flatten → Dense 10, softmax"
    assert rows[0].settings == "adam, lr 0.003, batch 32, 1 epoch"
    assert rows[3].status == "failed" and rows[3].message == "Training diverged."


def test_several_seeds_give_the_board_a_spread(store: ClassroomStore, count_trainings):
    budget = dataclasses.replace(TINY, seeds=3)
    code, (ana, _) = new_class(store, budget)
    config = lb.preset_entry_config("fashion_relu_cnn", budget)
    entry = store.submit_entry(code, ana, config)
    trained: Entry = lb.train_entry(store, code, entry.entry_id)
    assert trained.status == "done", trained.message
    results = training.train_seeds(lb.entry_train_config(config, budget), 3, use_cache=True)
    accuracies = [r.test_accuracy for r in results]
    assert all(r.from_cache for r in results)
    assert trained.accuracy == pytest.approx(sum(accuracies) / 3)
    assert trained.spread == pytest.approx(lb.seed_spread(accuracies))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10**500, True, "3"])
def test_a_budget_number_that_is_not_a_finite_number_is_refused_with_a_message(value):
    # Before the one number check (parsing.check_number), NaN and infinity raised from int().
    with pytest.raises(ClassroomInputError):
        lb.LeaderboardBudget(max_epochs=value)
