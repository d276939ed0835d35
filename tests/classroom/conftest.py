"""Fixtures of the classroom tests: a real `redis-server` for the session, a clock to move by hand,
and `store` / `make_store`, parametrised over the in-process and the Redis implementation."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnnviz.classroom import ClassroomStore, InProcessStore, Limits, RedisStore

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A private `redis-server` on a free loopback port (no persistence), stopped after the session."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server); "
                    "the Redis store's tests need a real server")
    import redis

    folder = Path(tempfile.mkdtemp(prefix="cnnviz-redis-"))
    port = _free_port()
    process = subprocess.Popen(
        [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no", "--protected-mode", "yes"],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited early: {(folder / 'redis.log').read_text()[-2000:]}")
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)  # Waiting for the server to listen, not for the code under test.
        client.close()
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


class FakeClock:
    """Wall-clock seconds that move only when a test says so (starts at the real time, so that
    Redis's PEXPIREAT lies in the real future)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["in-process", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_store(kind: str, clock: FakeClock, request: pytest.FixtureRequest) -> Iterator[Callable[..., ClassroomStore]]:
    """`make_store(limits=Limits(...))`: a store of this test's kind on the test's clock; the Redis
    database is emptied before each test."""
    made: list[ClassroomStore] = []
    url = request.getfixturevalue("redis_url") if kind == "redis" else ""
    if url:
        import redis

        with redis.Redis.from_url(url) as client:
            client.flushdb()

    def make(limits: Limits = Limits()) -> ClassroomStore:
        store: ClassroomStore = RedisStore(url, limits=limits, clock=clock) if url \
            else InProcessStore(limits=limits, clock=clock)
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., ClassroomStore]) -> ClassroomStore:
    return make_store()
