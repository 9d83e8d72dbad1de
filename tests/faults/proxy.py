"""A TCP proxy the fault tests control: pass, stall, silent drop, reset.

It runs its own event loop on a background thread, so a test can put it between real worker
processes and a real server and flip its mode from synchronous or asynchronous test code.

- `pass_through()`: bytes flow both ways (new connections are dialled upstream).
- `stall()`: nothing is forwarded, nothing is lost: buffered bytes flow once passing resumes
  (a congested or paused path).
- `drop()`: a silent drop, as when a NAT or a firewall forgets the connection: every connection
  open now becomes a black hole for good (bytes read and discarded, no FIN, no RST), and
  connections opened while dropping are black holes too. `pass_through()` afterwards serves
  new connections only, exactly like a path whose state was lost.
- `reset()`: every open connection is closed with an RST; new ones pass.
- `lose_replies()`: requests reach the server, its replies are discarded (a path that fails
  after the server acted: the client cannot tell whether its command ran).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field

PASS, STALL, DROP, LOSE_REPLIES = "pass", "stall", "drop", "lose_replies"


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream; `dead` means black-holed for good."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    dead: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    """A loopback TCP proxy to `upstream_host:upstream_port`; see the module docstring."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = PASS
        self.port = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._resume = asyncio.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.accepted = 0

    # -- control (any thread) ------------------------------------------------------------
    def start(self) -> FaultProxy:
        """Listen on a free loopback port (`self.port`)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)
        return self

    @property
    def url(self) -> str:
        """A redis:// URL through the proxy."""
        return f"redis://127.0.0.1:{self.port}"

    def pass_through(self) -> None:
        """Forward again (black-holed connections stay dead)."""
        self._call(self._set_mode, PASS)

    def stall(self) -> None:
        """Hold every byte until `pass_through()`."""
        self._call(self._set_mode, STALL)

    def drop(self) -> None:
        """Silently black-hole every connection, open now or opened until `pass_through()`."""
        self._call(self._set_mode, DROP)

    def lose_replies(self) -> None:
        """Forward requests, discard every reply, until `pass_through()`."""
        self._call(self._set_mode, LOSE_REPLIES)

    def reset(self) -> None:
        """Close every open connection with an RST."""
        self._call(self._reset_all)

    def close(self) -> None:
        """Stop listening, close every connection and the loop's thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, fn: object, *args: object) -> None:
        async def run() -> None:
            fn(*args)  # type: ignore[operator]

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(5)

    # -- inside the proxy's loop ---------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        self._reset_all()
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        rest = [t for t in asyncio.all_tasks() if t is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _set_mode(self, mode: str) -> None:
        self.mode = mode
        if mode == DROP:
            for link in self._links:
                link.dead = True
        if mode == STALL:
            self._resume.clear()
        else:
            self._resume.set()

    def _reset_all(self) -> None:
        for link in list(self._links):
            for writer in (link.client, link.upstream):
                if writer is None:
                    continue
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        # Linger 0: close() sends an RST instead of a FIN.
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                writer.transport.abort()
            for task in link.tasks:
                task.cancel()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Returning (not raising) on cancel: asyncio logs a cancelled connection callback.
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client=writer, dead=self.mode == DROP)
        self._links.add(link)
        try:
            while self.mode == STALL:
                await self._resume.wait()
            if link.dead:
                await self._swallow(reader)
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            self._forget(link)
            return
        link.upstream = up_writer
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link, replies=False)),
            asyncio.create_task(self._pump(up_reader, writer, link, replies=True)),
        ]
        await asyncio.gather(*link.tasks, return_exceptions=True)
        self._forget(link)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        """A black hole: read and discard until the peer closes (never answer, never close)."""
        with contextlib.suppress(OSError, ConnectionError):
            while await reader.read(65536):
                pass

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        replies: bool,
    ) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                while self.mode == STALL and not link.dead:
                    await self._resume.wait()
                if link.dead or (replies and self.mode == LOSE_REPLIES):
                    continue  # swallowed: the other side never hears of it
                writer.write(data)
                await writer.drain()
        except (OSError, ConnectionError):
            pass
        if not link.dead:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def _forget(self, link: _Link) -> None:
        self._links.discard(link)
        if not link.dead:
            for writer in (link.client, link.upstream):
                if writer is not None:
                    with contextlib.suppress(OSError, RuntimeError):
                        writer.close()
