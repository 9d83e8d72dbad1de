"""Logging set-up for headless runs: text or JSON lines on stderr."""

from __future__ import annotations

import logging
import sys
import time

import orjson

#: Fields a log call may attach with `extra=` that JSON lines carry (log shippers index them).
TASK_FIELDS = ("task_id", "queue", "task", "attempt")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the task's `task_id`, `queue`,
    `task` and `attempt` where the call gave them, and the exception, if any."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in TASK_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def setup_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Send logs to stderr in `fmt` ("text" or "json"), replacing earlier handlers."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
        )
        formatter.converter = time.localtime
        handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
