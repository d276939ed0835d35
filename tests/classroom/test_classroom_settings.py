"""`CNNVIZ_REDIS_URL` (cnnviz/settings.py) and the server's one store (widgets/ui.py: classroom_store)."""

from __future__ import annotations

import pytest

from cnnviz import settings
from cnnviz.classroom import InProcessStore, RedisStore
from widgets import ui


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://user:pw@cache.example:6380/2",
                                 "redis://127.0.0.1", "unix:///run/redis/redis.sock"])
def test_a_redis_url_is_used(monkeypatch, url):
    monkeypatch.setenv("CNNVIZ_REDIS_URL", url)
    assert settings.redis_url() == url
    assert not [p for p in settings.problems() if "CNNVIZ_REDIS_URL" in p]


@pytest.mark.parametrize("url, words", [
    ("localhost:6379", "starts with redis://"),
    ("http://localhost:6379", "starts with redis://"),
    ("redis://:6379/0", "names no host"),
    ("redis://localhost:99999/0", "port or host"),
    ("redis://localhost:6379/zero", "database"),
    ("unix://", "socket"),
    ("redis://local host", "no spaces"),
])
def test_a_bad_redis_url_is_a_problem_and_the_store_stays_in_process(monkeypatch, url, words):
    monkeypatch.setenv("CNNVIZ_REDIS_URL", url)
    assert settings.redis_url() is None
    (problem,) = [p for p in settings.problems() if p.startswith("CNNVIZ_REDIS_URL")]
    assert words in problem and "in-process" in problem


def test_a_password_is_never_quoted(monkeypatch):
    monkeypatch.setenv("CNNVIZ_REDIS_URL", "http://admin:hunter2@cache.example:6379/0")
    (problem,) = [p for p in settings.problems() if p.startswith("CNNVIZ_REDIS_URL")]
    assert "hunter2" not in problem and "admin" not in problem and "cache.example" in problem


def test_one_store_per_server_in_process_by_default_redis_when_set(monkeypatch, redis_url):
    ui._classroom_store.clear()
    try:
        monkeypatch.delenv("CNNVIZ_REDIS_URL", raising=False)
        first = ui.classroom_store()
        assert isinstance(first, InProcessStore) and ui.classroom_store() is first
        monkeypatch.setenv("CNNVIZ_REDIS_URL", redis_url)
        shared = ui.classroom_store()
        assert isinstance(shared, RedisStore) and ui.classroom_store() is shared
        # Two servers on one Redis: a class made through one is seen by a second store on the same URL.
        new = shared.create_class("seen everywhere")
        assert RedisStore(redis_url).class_info(new.code).title == "seen everywhere"
    finally:
        ui._classroom_store.clear()
