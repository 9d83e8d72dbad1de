"""Finding the server: the URL given, else `SPOOL_REDIS_URL`, else the embedded server already
running in the default state directory (the console's), else a new embedded server there.

So a newcomer's console, worker (`spool-console --no-ui`) and script (`Client()`) all reach the
same server with no flags. The embedded server listens on `<state dir>/valkey.sock` (owner-only
permissions), so that socket is the advertisement: whoever can open it may use it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
        if server.ping():
            choice = ServerChoice(
                server.url, f"embedded server already running in {server.data_dir}"
            )
        elif not start:
            raise EmbeddedServerError(f"no server given and none running in {server.data_dir}")
        else:
            try:
                server.start()
                choice = ServerChoice(
                    server.url, f"started the embedded server in {server.data_dir}", server
                )
            except EmbeddedServerError:
                # Another process started it between our ping and our start: use theirs.
                if not server.ping():
                    raise
                choice = ServerChoice(
                    server.url, f"embedded server already running in {server.data_dir}"
                )
    log.info("%s", choice.describe())
    return choice
