"""A small local Redis Cluster made of embedded `valkey-server` nodes (tests and trials)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path

from engine.embedded import EmbeddedServer, EmbeddedServerError, _valkey_executable


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port(rng: random.Random | None = None) -> int:
    """A free port whose cluster bus port (port + 10000) is free too; both must be < 65536."""
    rng = rng or random.Random()
    for _ in range(200):
        port = rng.randrange(20_000, 55_000)
        if _port_free(port) and _port_free(port + 10_000):
            return port
    raise EmbeddedServerError("no free port pair for a cluster node")


class EmbeddedCluster:
    """`nodes` primaries (no replicas) on free loopback ports, slots spread evenly.

    `url` is a `redis+cluster://` URL that `engine.connection.open_redis` understands.
    """

    def __init__(self, data_dir: str | os.PathLike[str], nodes: int = 3) -> None:
        if nodes < 3:
            raise ValueError("a Redis Cluster needs at least 3 primaries")
        self.data_dir = Path(data_dir).absolute()
        self.servers = [
            EmbeddedServer(
                self.data_dir / f"node-{i}",
                port=free_cluster_port(),
                persistence=False,
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "5000",
                ),
            )
            for i in range(nodes)
        ]

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:<first node's port>`."""
        return f"redis+cluster://127.0.0.1:{self.servers[0].port}"

    def start(self, timeout_s: float = 20.0) -> EmbeddedCluster:
        """Start the nodes, assign the slots and wait until the cluster reports `ok`."""
        try:
            for server in self.servers:
                server.data_dir.mkdir(parents=True, exist_ok=True)
                server.start()
        except BaseException:
            self.stop()  # a node that fails must not leave the others running
            raise
        cli = str(Path(_valkey_executable()).with_name("valkey-cli"))
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        done = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            self.stop()
            raise EmbeddedServerError(
                f"cluster create failed: {done.stdout[-500:]}{done.stderr[-500:]}"
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = [
                subprocess.run(
                    [cli, "-p", str(s.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                    check=False,
                ).stdout
                for s in self.servers
            ]
            if all("cluster_state:ok" in st for st in states):
                return self
            time.sleep(0.1)  # polling a child process's state: there is no event to wait on
        self.stop()
        raise EmbeddedServerError("the embedded cluster did not reach cluster_state:ok in time")

    def stop(self) -> None:
        """Stop every node."""
        for server in self.servers:
            server.stop()
