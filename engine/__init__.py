"""Spool's engine: a Redis-backed task queue that runs without a screen.

Never imports Textual or rich: the console and `--no-ui` share this package.
"""

from __future__ import annotations

from engine.client import Client
from engine.config import EngineConfig
from engine.sync_client import SyncClient
from engine.task import (
    TaskCancelledError,
    TaskContext,
    TaskDeadError,
    TaskInfo,
    TaskSpec,
    TaskState,
    task,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "EngineConfig",
    "SyncClient",
    "TaskCancelledError",
    "TaskContext",
    "TaskDeadError",
    "TaskInfo",
    "TaskSpec",
    "TaskState",
    "__version__",
    "task",
]
