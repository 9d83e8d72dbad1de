"""Finding the server: the URL given, else `SPOOL_REDIS_URL`, else the embedded server already
running in the default state directory (the console's), else a new embedded server there.

So a newcomer's console, worker (`spool-console --no-ui`) and script (`Client()`) all reach the
same server with no flags. The embedded server listens on `<state dir>/valkey.sock` (owner-only
permissions), so that socket is the advertisement: whoever can open it may use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.connection import mask_url
from engine.embedded import EmbeddedServer, EmbeddedServerError, default_state_dir

log = logging.getLogger("spool.discovery")

ENV_URL = "SPOOL_REDIS_URL"


@dataclass(frozen=True, slots=True)
class ServerChoice:
    """The server a process will use, why, and the embedded server it must stop (if it
    started one; stopping it ends it for every other process using it)."""

    url: str
    source: str
    started: EmbeddedServer | None = None

    def describe(self) -> str:
        """One line for the log, the password masked."""
        return f"using Redis at {mask_url(self.url)} ({self.source})"


def embedded_for(state_dir: Path | None = None) -> EmbeddedServer:
    """The embedded server of `state_dir` (default: the console's), not started."""
    return EmbeddedServer(data_dir=state_dir or default_state_dir())


def find_server(
    url: str | None = None,
    *,
    state_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    start: bool = True,
) -> ServerChoice:
    """Decide which server to use; blocking (it may start `valkey-server`: call it in a thread
    from async code). Logs the choice once.

    Raises `EmbeddedServerError` when none is given, none runs and `start` is False or the
    server cannot start.
    """
    env = os.environ if env is None else env
    if url:
        choice = ServerChoice(url, "given")
    elif env.get(ENV_URL):
        choice = ServerChoice(env[ENV_URL], ENV_URL)
    else:
        server = embedded_for(state_dir)
        # One process at a time decides: two consoles launched together both saw no server
        # and both started one on the same socket and data directory.
        with _start_lock(server.data_dir):
            choice = _embedded_choice(server, start)
    log.info("%s", choice.describe())
    return choice


@contextlib.contextmanager
def _start_lock(data_dir: Path) -> Iterator[None]:
    """Hold `<data dir>/start.lock` (an advisory lock the OS drops if the holder dies)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(data_dir / "start.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _embedded_choice(server: EmbeddedServer, start: bool) -> ServerChoice:
    """The running embedded server, else a new one (when `start`)."""
    if server.ping():
        return ServerChoice(server.url, f"embedded server already running in {server.data_dir}")
    if not start:
        raise EmbeddedServerError(f"no server given and none running in {server.data_dir}")
    try:
        server.start()
    except EmbeddedServerError:
        # Started meanwhile by a process that does not take the lock (a bare EmbeddedServer).
        if not server.ping():
            raise
        return ServerChoice(server.url, f"embedded server already running in {server.data_dir}")
    return ServerChoice(server.url, f"started the embedded server in {server.data_dir}", server)
