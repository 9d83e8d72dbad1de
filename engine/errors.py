"""Errors the engine raises for conditions a caller should tell apart from a network failure."""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError, ResponseError


class RedisFull(RuntimeError):
    """Redis refused a write because `maxmemory` is reached (policy `noeviction`).

    Nothing was stored. Workers keep finishing the tasks they hold (their writes are allowed
    past the limit, see engine/scripts.py); enqueue again once memory is freed.
    """


def is_oom(exc: BaseException) -> bool:
    """Whether `exc` is the server's OOM refusal."""
    # redis-py maps the OOM reply to OutOfMemoryError; inside a script it can arrive as a plain
    # script error that quotes the reply.
    return isinstance(exc, OutOfMemoryError) or (
        isinstance(exc, ResponseError) and "used memory > 'maxmemory'" in str(exc)
    )


class DurabilityError(RuntimeError):
    """A durable enqueue could not be confirmed on a replica or in the AOF in time.

    The tasks were written to the primary (they may well run); what is not known is whether
    they would survive a failover or a crash of the primary right now.
    """
