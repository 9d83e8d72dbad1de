"""Real `spool-console --no-ui` worker processes: start them, wait for their exit, kill the rest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from support.polling import wait_for

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcesses:
    """Starts worker processes running tests.workers_support.tasks for one test, each printing
    to its own log file; `cleanup()` kills whatever is still running."""

    def __init__(self, prefix: str, handler_url: str, logs: Path, *settings: str) -> None:
        # `handler_url`: where handlers that count runs talk to the server (WS_REDIS_URL);
        # `settings`: options every process gets before the ones given to `spawn`.
        self.prefix, self.handler_url, self.logs = prefix, handler_url, logs
        self.settings = settings
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, redis_url: str, *extra: str) -> subprocess.Popen[bytes]:
        """One worker on `redis_url`; later options in `extra` override earlier ones."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPOOL_")}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        )
        env["WS_REDIS_URL"] = self.handler_url
        log = self.logs / f"worker-{len(self.started)}.log"
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "spool_console.cli",
                    "--no-ui",
                    "--redis-url",
                    redis_url,
                    "--prefix",
                    self.prefix,
                    "--tasks",
                    "tests.workers_support.tasks",
                    *self.settings,
                    *extra,
                ],
                cwd=ROOT,
                env=env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        proc.log_path = log  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    def cleanup(self) -> None:
        kill_all(self.started)


class Procs(WorkerProcesses):
    """Workers on the shared server (`redis_url`), with a 1 s lease and status line."""

    def __init__(self, redis_url: str, prefix: str, logs: Path) -> None:
        super().__init__(prefix, redis_url, logs, "--lease", "1", "--status-interval", "1")
        self.redis_url = redis_url

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        return self.spawn(self.redis_url, *extra)


def log_of(proc: subprocess.Popen[bytes]) -> str:
    """What a process started by `WorkerProcesses` printed so far."""
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGKILL every one of `procs` still running and reap it."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


async def wait_running(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """Until `proc` has printed its first status line ("spool: …"): it is up and working."""
    await wait_for(lambda: "spool: " in log_of(proc), timeout_s, f"pid {proc.pid} running")


async def wait_exit(proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    """`proc`'s exit code, once it has exited (processes stop slowly: a long deadline)."""
    await wait_for(lambda: proc.poll() is not None, timeout_s, f"pid {proc.pid} to exit")
    return proc.returncode


async def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every one of `procs` once it is up; each must exit with 0 (its log is the
    failure message). A process still importing when the signal lands dies by the signal's
    default action (-15) before the worker could install its handler: that is the OS, not the
    drain under test (seen in CI when the others had finished the work first)."""
    for proc in procs:
        await wait_running(proc)
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        assert await wait_exit(proc) == 0, log_of(proc)
