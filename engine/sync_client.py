"""`SyncClient`: the `Client` API, blocking, for code without an event loop (WSGI apps, scripts).

It runs a private event loop on a daemon thread and submits each call to it, so it also works
from inside a thread of an async program (it never touches the caller's loop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from engine.client import Client
from engine.schedule import ScheduleInfo
from engine.task import TaskInfo, TaskSpec

T = TypeVar("T")


class SyncClient:
    """Blocking twin of `Client`: `with SyncClient() as client: client.enqueue(...)`.

    Takes the same arguments as `Client` (no URL: see `engine.discovery`). Safe to share
    between threads: calls are serialised onto the client's own loop.
    """

    def __init__(self, url: str | None = None, **client_kwargs: Any) -> None:
        self._client = Client(url, **client_kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def connect(self) -> SyncClient:
        """Start the private loop and connect (idempotent). `with` calls this for you."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="spool-sync-client", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
        try:
            self._run(self._client.connect())
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Close the connection, stop the loop and its thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._client.close(), loop).result()
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def __enter__(self) -> SyncClient:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise RuntimeError("SyncClient is not connected: use `with SyncClient(...)`")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, loop)
        return future.result()

    @property
    def client(self) -> Client:
        """The async client underneath (its methods must run on this client's loop)."""
        return self._client

    # -- the producer API --------------------------------------------------------------------
    def enqueue(
        self,
        task: str | Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """`Client.enqueue`, blocking."""
        return self._run(self._client.enqueue(task, args, kwargs, **options))

    def enqueue_many(self, specs: Sequence[TaskSpec | Mapping[str, Any]]) -> list[str]:
        """`Client.enqueue_many`, blocking."""
        return self._run(self._client.enqueue_many(specs))

    def status(self, task_id: str, queue: str | None = None) -> TaskInfo | None:
        """`Client.status`, blocking."""
        return self._run(self._client.status(task_id, queue))

    def schedules(self) -> list[ScheduleInfo]:
        """`Client.schedules`, blocking."""
        return self._run(self._client.schedules())

    def result(self, task_id: str, timeout: float | None = None, queue: str | None = None) -> Any:
        """`Client.result`, blocking until the task ends (or `timeout`)."""
        return self._run(self._client.result(task_id, timeout=timeout, queue=queue))

    def cancel(self, task_id: str, queue: str | None = None) -> bool:
        """`Client.cancel`, blocking."""
        return self._run(self._client.cancel(task_id, queue))
