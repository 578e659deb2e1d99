"""The API suite again, against a real 3-node Redis Cluster (tests/redis_cluster.py): every key a
request, a publish or an erasure touches together must live in one slot, and every script and
transaction must run in a cluster."""

from __future__ import annotations

import pytest
from redis_cluster import LocalCluster
from test_api import *  # noqa: F403 (every test of the API suite, collected here too)


@pytest.fixture(scope="module")
def redis_client(tmp_path_factory):
    """Replaces the single server for this module's tests: a cluster of three primaries."""
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    client = cluster.client()
    yield client
    client.close()
    cluster.stop()
