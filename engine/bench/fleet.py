"""Helper processes of a multi-process benchmark, their snapshots, RSS, and key cleanup.

With `--processes P`, the run uses the in-process pool plus P - 1 `spool-console --no-ui`
children on the same bench prefix and queue (so P processes in all, each at the same
concurrency). The in-process pool is what the console's live screen can watch; the children
are what a real fleet looks like. Their latencies come from the metrics snapshot each child
publishes into Redis on shutdown, merged with the local one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from redis.asyncio import Redis

from engine.metrics.publisher import read_snapshots
from engine.metrics.snapshot import MetricsSnapshot

_UNLINK_BATCH = 500


class Fleet:
    """Children running `spool-console --no-ui`; start, wait until registered, stop."""

    def __init__(self, redis_url: str, prefix: str, queue: str, log_dir: Path) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self.queue = queue
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        #: pid -> master end of the pseudo-terminal of a console child.
        self._terminals: dict[int, int] = {}

    def spawn(self, count: int, concurrency: int | None, min_w: int, max_w: int) -> None:
        """Start `count` children (non-blocking)."""
        env = _child_env()
        cmd = [*self._command(), "--no-ui", "--status-interval", "3600"]
        if concurrency is not None:
            cmd += ["--concurrency", str(concurrency)]
        else:
            cmd += ["--min-workers", str(min_w), "--max-workers", str(max_w)]
        for i in range(count):
            log = open(self.log_dir / f"worker-{len(self.procs)}-{i}.log", "ab")  # noqa: SIM115
            try:
                self.procs.append(
                    subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                )
            finally:
                log.close()  # the child holds its own descriptor

    def spawn_console(self, concurrency: int, columns: int = 160, rows: int = 45) -> None:
        """Start one `spool-console` (the UI and its local pool) on a pseudo-terminal.

        What a console left open costs is the soak's question too (issue 15), so the child is
        the real app drawing its dashboard into a `columns`×`rows` terminal whose output a
        thread reads and drops (an unread terminal would block the app's writes).
        """
        import fcntl
        import pty
        import struct
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        env = {**_child_env(), "TERM": "xterm-256color"}
        cmd = [*self._command(), "--concurrency", str(concurrency)]
        try:
            proc = subprocess.Popen(
                cmd, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
            )
        finally:
            os.close(slave)
        self.procs.append(proc)
        self._terminals[proc.pid] = master
        threading.Thread(target=_discard, args=(master,), daemon=True).start()

    def _command(self) -> list[str]:
        """`spool-console` on this fleet's server, prefix and queue, draining 5 s at the end."""
        return [
            sys.executable, "-m", "spool_console.cli",
            "--redis-url", self.redis_url, "--prefix", self.prefix, "--queue", self.queue,
            "--grace", "5",
        ]  # fmt: skip

    async def wait_registered(
        self, redis: Redis, workers_key: str, want: int, timeout_s: float
    ) -> None:
        """Wait until `want` processes heartbeat under the prefix; raise if a child died."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if await redis.hlen(workers_key) >= want:
                return
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"benchmark worker exited with {p.returncode}: {self._tail()}"
                    )
            await asyncio.sleep(0.05)
        raise TimeoutError(f"benchmark workers did not register within {timeout_s:g} s")

    def _tail(self) -> str:
        logs = sorted(self.log_dir.glob("worker-*.log"))
        if not logs:
            return "(no log)"
        return logs[-1].read_text(errors="replace")[-800:]

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Ask every child to leave (ctrl+q to a console, SIGTERM to a worker: both drain),
        then SIGKILL what is still running."""
        for p in self.procs:
            if p.poll() is None:
                terminal = self._terminals.get(p.pid)
                with contextlib.suppress(ProcessLookupError, OSError):
                    if terminal is not None:
                        os.write(terminal, b"\x11")
                    else:
                        p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for p in self.procs:
            while p.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if p.poll() is None:
                p.kill()
                await asyncio.to_thread(p.wait)
        self.procs.clear()
        self._terminals.clear()  # each closes with its reader thread

    @property
    def pids(self) -> list[int]:
        """Process ids of the children still running."""
        return [p.pid for p in self.procs if p.poll() is None]


def _child_env() -> dict[str, str]:
    """This environment without what would make a child serve HTTP or load the user's tasks."""
    return {k: v for k, v in os.environ.items() if k not in ("SPOOL_HTTP", "SPOOL_TASKS")}


def _discard(terminal: int) -> None:
    """Read a console child's screen output until the child is gone, then close the terminal."""
    try:
        with contextlib.suppress(OSError):  # EIO once no process holds the other end
            while os.read(terminal, 65536):
                pass
    finally:
        os.close(terminal)


def rss_mb(pids: list[int]) -> float:
    """Resident memory of this process plus `pids`, in MB (vanished processes count 0)."""
    total = psutil.Process().memory_info().rss
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total / 1e6


async def child_snapshots(redis: Redis, prefix: str, exclude: str) -> list[MetricsSnapshot]:
    """Every published snapshot under `prefix` except the worker `exclude` (the local pool)."""
    return [snap for snap in await read_snapshots(redis, prefix) if snap.worker_id != exclude]


async def delete_prefix(redis: Redis, prefix: str) -> int:
    """UNLINK every key under `prefix:`; return how many went."""
    removed = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= _UNLINK_BATCH:
            removed += await redis.unlink(*batch)
            batch.clear()
    if batch:
        removed += await redis.unlink(*batch)
    return removed


async def count_prefix(redis: Redis, prefix: str) -> int:
    """How many keys exist under `prefix:` (tests check that none are left)."""
    return len([k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)])
