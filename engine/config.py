"""Engine settings: one frozen object with every tunable of the broker and its callers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_LEVELS: tuple[str, ...] = ("high", "default", "low")

# Queue and level names become part of Redis keys and of the `{Q}` hash tag, so a brace or a
# space would break the slot rule; a conservative alphabet keeps keys greppable too.
_NAME_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}")


def validate_name(kind: str, name: str) -> str:
    """Return `name` if it may be used as a queue or level name, else raise `ValueError`."""
    # fullmatch, not match with `$`: `$` also matches before a trailing newline.
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValueError(
            f"invalid {kind} name {name!r}: use 1-128 of letters, digits, '_', '-', '.', ':'"
            " (no braces or whitespace)"
        )
    return name


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Tunables shared by the client, the broker and the workers.

    Durations carry their unit in the name; defaults follow the design document.
    """

    prefix: str = "spool"
    levels: tuple[str, ...] = DEFAULT_LEVELS
    queue_levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lease_s: float = 10.0
    result_ttl_s: float = 24 * 3600.0
    max_retries: int = 3
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    crash_limit: int = 3
    dead_max: int = 100_000
    dead_max_age_s: float = 7 * 24 * 3600.0
    # A deleted dead letter stays restorable this long (0: deletes are final), and at most
    # this many per queue are held (the oldest deletes go first): see engine/undo.py.
    restore_window_s: float = 600.0
    deleted_max: int = 100_000
    wake_tokens_max: int = 64
    promote_batch: int = 512

    def __post_init__(self) -> None:
        validate_name("prefix", self.prefix)
        for level in self.levels:
            validate_name("level", level)
        for queue, levels in self.queue_levels.items():
            validate_name("queue", queue)
            if not levels:
                raise ValueError(f"queue {queue!r} needs at least one priority level")
            for level in levels:
                validate_name("level", level)
        if self.lease_s <= 0 or self.result_ttl_s <= 0:
            raise ValueError("lease_s and result_ttl_s must be positive")
        if self.restore_window_s < 0 or self.deleted_max < 1:
            raise ValueError("restore_window_s must be >= 0 and deleted_max >= 1")

    def levels_for(self, queue: str) -> tuple[str, ...]:
        """The priority levels of `queue`, highest first."""
        return tuple(self.queue_levels.get(queue, self.levels))
