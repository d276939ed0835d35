"""cnnviz.training.config: cache keys, the canonical stack form and the one validation of the settings."""

from __future__ import annotations

import dataclasses

import pytest

from cnnviz import training
from cnnviz.errors import SettingsError
from cnnviz.training import TrainConfig


def _changed_value(name: str, value, tiny_stack, tiny_config):
    changes = {
        "dataset": "mnist", "limit_train": 100, "limit_test": 50,
        "layers": training.freeze_stack(tiny_stack[:-1] + [{"type": "dense", "units": 3}]),
        "optimizer": "sgd", "learning_rate": 0.5, "batch_size": 7, "epochs": 9, "seed": 3,
        "classes": (0, 2), "augmentation": (("rotation", 0.2),), "warm_start": tiny_config(epochs=1),
        "warm_start_layers": 1, "freeze_layers": 2, "fast": not value, "validate_every_epoch": not value,
        "record_gradients": not value,
    }
    return changes[name]


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(TrainConfig)])
def test_every_field_changes_the_cache_key(name, tiny_stack, tiny_config):
    base = tiny_config()
    changed = dataclasses.replace(base, **{name: _changed_value(name, getattr(base, name), tiny_stack, tiny_config)})
    assert getattr(changed, name) != getattr(base, name)
    assert changed.key() != base.key()


def test_key_is_stable_and_independent_of_how_the_stack_was_written(tiny_stack):
    as_lists = TrainConfig.from_stack([{**layer} for layer in tiny_stack])
    as_tuples = TrainConfig(layers=training.freeze_stack(tiny_stack))
    reordered = TrainConfig.from_stack([dict(reversed(list(layer.items()))) for layer in tiny_stack])
    assert as_lists.key() == as_tuples.key() == reordered.key()
    assert as_lists == as_tuples and hash(as_lists) == hash(as_tuples)
    assert as_lists.stack() == [dict(layer) for layer in tiny_stack]
    assert len(as_lists.key()) >= 16 and as_lists.key() == TrainConfig.from_stack(tiny_stack).key()


def test_something_that_is_not_a_layer_is_a_programming_error():
    with pytest.raises(ValueError, match="must be a dict") as raised:
        TrainConfig(layers=("dense",))
    assert not isinstance(raised.value, SettingsError)


def test_default_config_is_the_seeds_relu_cnn():
    import keras

    from cnnviz.architecture import build_keras_model

    model = build_keras_model((28, 28, 1), TrainConfig().stack())
    assert model.count_params() == 38_254
    assert isinstance(model.layers[0], keras.layers.Conv2D)


@pytest.mark.parametrize("changes, words", [
    ({"epochs": 0}, "at least one epoch"),
    ({"batch_size": 0}, "batch size"),
    ({"learning_rate": 0.0}, "learning rate"),
    ({"learning_rate": float("nan")}, "learning rate"),
    ({"optimizer": "lion"}, "optimizer"),
    ({"classes": (1,)}, "two classes"),
    ({"augmentation": (("blur", 0.5),)}, "augmentation"),
    ({"freeze_layers": 9}, "freeze"),
    ({"warm_start_layers": 2}, "warm-start"),
])
def test_bad_settings_raise_readable_errors(tiny_data, tiny_config, changes, words):
    with pytest.raises(SettingsError, match=words):
        tiny_config(**changes).validate()
    with pytest.raises(ValueError, match=words):  # the engine refuses them too, before loading anything
        training.train(tiny_config(**changes), data=tiny_data)


def test_a_batch_must_fit_into_the_training_images_it_is_told_about(tiny_config):
    tiny_config(batch_size=32).validate(train_images=32)
    with pytest.raises(SettingsError, match=r"batch size \(2048\) is larger than the training set \(1,000 images\)"):
        tiny_config(batch_size=2048).validate(train_images=1_000)
