"""Regression corpus of issue 14, points 6 and 7: the disk cache and the warm-up under a class.

- 6: the cache prunes by last use, and the warm-up's pinned models are never evicted by student runs;
- 7: `python -m cnnviz warmup` fails loudly when it cannot store; invalid CNNVIZ_* settings are
  reported (command line: exit 2; app: a message on the page and in the server log); two warm-ups
  at once train every model once (a lock per entry that a killed process does not leave behind).

Commands run as real subprocesses where the behaviour is the exit status or another process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cnnviz import settings, training
from cnnviz.__main__ import main
from cnnviz.catalogue import PROJECT_ROOT
from cnnviz.training import cache, queue, warmup

TINY_STACK = [
    {"type": "conv2d", "filters": 2, "kernel_size": 3, "activation": "relu"},
    {"type": "flatten"},
    {"type": "dense", "units": 3, "activation": "softmax"},
]


@pytest.fixture(scope="module")
def tiny_result() -> training.TrainResult:
    """One tiny trained model (synthetic 8x8 images, one epoch), stored under many configs below."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, 64)
    data = SimpleNamespace(x_train=images, y_train=labels, x_test=images[:16], y_test=labels[:16],
                           class_names=("a", "b", "c"))
    config = training.TrainConfig.from_stack(TINY_STACK, epochs=1, batch_size=32, learning_rate=0.01, seed=0)
    return training.train(config, data=data)


def _store(result: training.TrainResult, seed: int) -> training.TrainConfig:
    """Store the tiny model as the entry of its config with this seed (the cache's own store)."""
    config = result.config.replace(seed=seed)
    assert cache.store_cached(dataclasses.replace(result, config=config)) is not None
    time.sleep(0.02)  # File times are kept to a few milliseconds: keep every use distinct.
    return config


def _present(config: training.TrainConfig) -> bool:
    return (cache.cache_dir() / config.key() / "result.json").is_file()


def _use(config: training.TrainConfig) -> None:
    """A student opens a page whose run is in the cache: the engine loads it."""
    assert cache.load_cached(config, source="injected") is not None
    time.sleep(0.02)


# --------------------------------------------------------------------------------------------
# 6. Pruning by last use; pinned warm-up models have their own budget
# --------------------------------------------------------------------------------------------

def test_pruning_goes_by_last_use_and_never_evicts_pinned_warmup_models(tiny_result, tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "MAX_DISK_ENTRIES", 3)
    monkeypatch.setattr(cache, "MAX_PINNED_ENTRIES", 4)
    # The warm-up: four models, stored first (the oldest entries on disk) and pinned.
    warm = []
    for seed in range(4):
        warm.append(_store(tiny_result, seed))
        assert cache.pin(warm[-1])  # As the warm-up pins each model once it is stored.
    # Students: three runs, then the first one is opened again.
    students = [_store(tiny_result, seed) for seed in range(100, 103)]
    _use(students[0])
    # A fourth student run: the least recently *used* student entry goes (not the oldest one).
    students.append(_store(tiny_result, 103))
    assert [_present(c) for c in students] == [True, False, True, True]
    # The scenario: a class trains 30 more runs; every warm-up model is still there.
    for seed in range(200, 230):
        _store(tiny_result, seed)
    assert all(_present(config) for config in warm) and all(cache.is_pinned(c) for c in warm)
    entries = [p for p in cache.cache_dir().iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(entries) == 4 + 3
    # The pinned budget is pruned by last use too: a fifth pinned model evicts the least recently used one.
    _use(warm[0])
    fifth = _store(tiny_result, 4)
    assert cache.pin(fifth)
    _store(tiny_result, 300)  # Pruning runs when something is stored.
    assert [_present(c) for c in warm] == [True, False, True, True] and _present(fifth)


def test_a_pinned_entry_stays_pinned_when_stored_again_and_killed_stores_are_cleaned(tiny_result, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    config = _store(tiny_result, 7)
    assert not cache.is_pinned(config) and cache.pin(config)
    _store(tiny_result, 7)  # Trained again (say, on other data): the pin is kept.
    assert cache.is_pinned(config)
    assert not cache.pin(tiny_result.config.replace(seed=8))  # Nothing stored: nothing to pin.
    # The half-written folder of a store killed an hour ago goes; one being written now stays.
    root = cache.cache_dir()
    old, fresh = root / ".deadbeef-old", root / ".deadbeef-fresh"
    old.mkdir()
    fresh.mkdir()
    os.utime(old, (time.time() - 2 * cache.STALE_TEMP_SECONDS,) * 2)
    _store(tiny_result, 9)
    assert not old.exists() and fresh.exists()


# --------------------------------------------------------------------------------------------
# 7a. The warm-up fails loudly when it cannot store
# --------------------------------------------------------------------------------------------

def _command(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnviz", *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_warmup_into_a_cache_folder_under_a_file_exits_non_zero_and_trains_nothing(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = _command("warmup", "--only", "train", "--tiny", env={"CNNVIZ_CACHE_DIR": str(blocker / "cache")})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "CNNVIZ_CACHE_DIR" in done.stderr and "is a file, not a folder" in done.stderr
    assert "trained and stored" not in done.stdout and "Traceback" not in done.stderr


def test_warmup_into_a_read_only_file_system_exits_non_zero_with_the_reason(tmp_path):
    # As root, chmod does not stop writes; /sys is mounted read-only (and is no user's to write).
    target = Path("/sys") / f"cnnviz-test-{uuid.uuid4().hex[:8]}"
    try:
        target.mkdir()
    except OSError:
        pass
    else:
        target.rmdir()
        pytest.skip("/sys is writable here")
    done = _command("warmup", "--only", "train", "--tiny", env={"CNNVIZ_CACHE_DIR": str(target)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Cannot store the warm-up's models" in done.stderr and str(target) in done.stderr
    assert "nothing was trained" in done.stderr and "trained and stored" not in done.stdout


def test_a_model_that_is_trained_but_not_stored_is_a_failure(tmp_path, monkeypatch, capsys):
    # The disk fills up after the start-up check: the engine's store fails, the warm-up says so.
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(cache, "store_cached", lambda result: None)
    assert main(["warmup", "--only", "train", "--tiny"]) == 1
    printed = capsys.readouterr()
    assert "trained and stored" not in printed.out
    assert "NOT stored in the disk cache" in printed.out
    assert "0 of 1 models ready" in printed.out and "1 of 1 models are NOT ready" in printed.err


# --------------------------------------------------------------------------------------------
# 7b. Two warm-ups at once train every model once; a killed lock holder blocks nobody
# --------------------------------------------------------------------------------------------

DRIVER = textwrap.dedent('''
    """One warm-up process: the real command on a short plan, recording every model it trains."""
    import os, sys, time
    from pathlib import Path

    from cnnviz import __main__ as command
    from cnnviz.training import engine, seed_stack, warmup

    log, barrier = Path(sys.argv[1]), Path(sys.argv[2])
    transfer_items = warmup.page_items("transfer", tiny=True)
    dependent = next(item for item in transfer_items if item.config.warm_start is not None)
    # The model that copies weights comes first: its warm start trains under the same locks.
    plan = [dependent] + warmup.page_items("augmentation", tiny=True)[:3]
    warmup.warmup_plan = lambda only=None, tiny=False: plan
    train_now = engine._train_now

    def recording(config, *args, **kwargs):
        with open(log, "a") as out:
            out.write(f"{os.getpid()} {config.key()}\\n")
        return train_now(config, *args, **kwargs)

    engine._train_now = recording
    together = seed_stack.train_together

    def recording_together(configs, *args, **kwargs):  # Seeds trained together: one line per seed.
        with open(log, "a") as out:
            out.writelines(f"{os.getpid()} {config.key()}\\n" for config in configs)
        return together(configs, *args, **kwargs)

    seed_stack.train_together = recording_together
    (barrier / str(os.getpid())).touch()
    deadline = time.time() + 120
    while len(list(barrier.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.05)
    sys.exit(command.main(["warmup", "--tiny"]))
''')


def test_two_warmups_at_once_train_every_model_exactly_once(tmp_path):
    script, log, barrier = tmp_path / "driver.py", tmp_path / "trained.log", tmp_path / "barrier"
    script.write_text(DRIVER)
    barrier.mkdir()
    env = {**os.environ, "CNNVIZ_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    processes = [subprocess.Popen([sys.executable, str(script), str(log), str(barrier)], cwd=PROJECT_ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, out + err
        assert "4 of 4 models ready" in out, out
    lines = [line.split() for line in log.read_text().splitlines()]
    trained = [key for _, key in lines]
    # The oracle: the plan's four models and the warm start the first one copies from, once each.
    transfer_items = warmup.page_items("transfer", tiny=True)
    dependent = next(item for item in transfer_items if item.config.warm_start is not None)
    expected = {dependent.config.key(), dependent.config.warm_start.key(),
                *(item.config.key() for item in warmup.page_items("augmentation", tiny=True)[:3])}
    assert sorted(trained) == sorted(expected), lines
    # Both processes trained: the work was shared, not done twice in a row.
    assert len({pid for pid, _ in lines}) == 2, lines
    assert any("another warm-up is training this model" in out for out, _ in outputs)


LOCK_HOLDER = textwrap.dedent('''
    import sys, time
    from cnnviz import training
    from cnnviz.training import cache

    config = training.TrainConfig.from_stack([{"type": "flatten"}, {"type": "dense", "units": 3,
                                              "activation": "softmax"}], seed=int(sys.argv[1]))
    with cache.entry_lock(config) as held:
        print("held" if held else "not held", flush=True)
        time.sleep(120)
''')


def test_a_lock_held_by_a_killed_warmup_blocks_nobody(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNVIZ_CACHE_DIR", str(tmp_path))
    config = training.TrainConfig.from_stack([{"type": "flatten"}, {"type": "dense", "units": 3,
                                              "activation": "softmax"}], seed=5)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, "5"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "CNNVIZ_CACHE_DIR": str(tmp_path)})
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with cache.entry_lock(config, blocking=False) as held:
            assert not held  # A live holder keeps it.
        with cache.entry_lock(config.replace(seed=6), blocking=False) as held:
            assert held  # One lock per entry: other entries are free.
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # Killed while holding the lock: its lock file stays behind.
        holder.wait(timeout=30)
    assert (tmp_path / "training" / cache.LOCKS_DIR / f"{config.key()}.lock").is_file()
    start = time.monotonic()
    with cache.entry_lock(config) as held:
        assert held
    assert time.monotonic() - start < 5


# --------------------------------------------------------------------------------------------
# 7c. Invalid environment settings are reported, never silently replaced
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["abc", "0", "-3", "2.5", "9" * 5000])
def test_an_invalid_max_training_jobs_stops_every_command_with_a_message(value, monkeypatch, capsys):
    monkeypatch.setenv("CNNVIZ_MAX_TRAINING_JOBS", value)
    assert main(["warmup", "--list"]) == 2
    assert main(["experiment", "transfer", "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert "Invalid environment settings" in err and "CNNVIZ_MAX_TRAINING_JOBS" in err
    assert "not a whole number from 1 to 64" in err and len(err) < 2000
    # The app still starts (it must be able to show the message): the default is used meanwhile.
    assert queue.capacity_from_environment() == settings.DEFAULT_MAX_TRAINING_JOBS


@pytest.mark.parametrize(("name", "value", "says"), [
    ("CNNVIZ_OFFLINE", "maybe", "neither on"),
    ("CNNVIZ_DATA_DIR", "/no/such/folder", "there is no such folder"),
    ("CNNVIZ_CACHE_DIR", "/etc/hostname/cache", "is a file, not a folder"),
    ("CNNVIZ_TRAINING_MEMORY_MB", "lots", "megabytes"),
])
def test_every_cnnviz_variable_is_checked(name, value, says, monkeypatch):
    monkeypatch.setenv(name, value)
    found = settings.problems()
    assert len(found) == 1 and found[0].startswith(f"{name}=") and says in found[0]


def test_valid_settings_are_used_and_raise_no_message(tmp_path, monkeypatch):
    for name, value in (("CNNVIZ_MAX_TRAINING_JOBS", " 3 "), ("CNNVIZ_OFFLINE", "Off"),
                        ("CNNVIZ_DATA_DIR", str(tmp_path)), ("CNNVIZ_CACHE_DIR", str(tmp_path / "new" / "cache")),
                        ("CNNVIZ_TRAINING_MEMORY_MB", "1024")):
        monkeypatch.setenv(name, value)
    assert settings.problems() == []
    assert (settings.max_training_jobs(), settings.offline(), settings.training_memory_mb()) == (3, False, 1024)
    assert settings.data_dir() == tmp_path and training.cache_dir() == tmp_path / "new" / "cache" / "training"


def test_a_real_command_exits_2_on_an_invalid_setting():
    done = _command("warmup", "--list", env={"CNNVIZ_MAX_TRAINING_JOBS": "abc"}, timeout=120)
    assert done.returncode == 2
    assert "CNNVIZ_MAX_TRAINING_JOBS='abc' is not a whole number from 1 to 64" in done.stderr
    assert "Traceback" not in done.stderr and "Disk cache" not in done.stdout


def test_the_app_shows_an_invalid_setting_on_its_page_and_logs_it_once(monkeypatch, caplog):
    value = f"abc{uuid.uuid4().hex[:6]}"  # A message no earlier test logged in this process.
    monkeypatch.setenv("CNNVIZ_MAX_TRAINING_JOBS", value)
    with caplog.at_level(logging.ERROR, logger="cnnviz.settings"):
        at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
        assert not at.exception
        shown = [error.value for error in at.error if "server setting is invalid" in error.value]
        assert len(shown) == 1 and "CNNVIZ" in shown[0] and value in shown[0] and "not a whole number" in shown[0]
        at.run()  # Every run shows it; the server log has it once.
    assert any(value in error.value for error in at.error)
    logged = [record for record in caplog.records if value in record.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR
