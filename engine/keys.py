"""The one place that builds Redis key names.

Every key of a queue carries the hash tag `{queue}`, so all keys one Lua script touches live in
one Redis Cluster slot.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import validate_name

#: A member of every queue's `active` zset (score +inf) and field of its `lease` hash that keeps
#: them hash tables, not listpacks (see engine/lua/common.lua). No task id can be it: ids have
#: no spaces or '|'. Readers that count or list `active` leave it out.
HASHTABLE_MEMBER = "| spool: keeps this a hash table; a listpack scans on every lookup |"


@dataclass(frozen=True, slots=True)
class GlobalKeys:
    """Keys shared by every queue under one prefix."""

    prefix: str

    @property
    def queues(self) -> str:
        """Set of known queue names."""
        return f"{self.prefix}:queues"

    @property
    def audit(self) -> str:
        """Stream of operator actions (capped): time, host, user, action, scope, result."""
        return f"{self.prefix}:audit"

    @property
    def workers(self) -> str:
        """Hash: worker id -> JSON heartbeat record."""
        return f"{self.prefix}:workers"

    @property
    def workers_seen(self) -> str:
        """Zset: worker id -> last heartbeat (ms), so a heartbeat finds stale records without
        reading every one. Tagged with the workers key, so both share a Cluster slot."""
        workers = self.workers
        tag = _hash_tag(workers)
        return f"{workers}:seen{{{workers if tag is None else tag}}}"

    def lock(self, name: str, queue: str) -> str:
        """A short-lived lock for periodic maintenance of one queue (reaper, repair)."""
        return f"{self.prefix}:lock:{name}:{{{queue}}}"

    @property
    def schedules(self) -> str:
        """Hash: periodic task name -> its schedule JSON (every/cron/tz) and queue."""
        return f"{self.prefix}:schedules"

    def cancel_channel(self, worker_id: str) -> str:
        """Pub/sub channel on which one worker process hears which of its tasks to cancel."""
        return f"{self.prefix}:cancel:{worker_id}"


class QueueKeys:
    """Keys of one queue. Built once per queue and cached by the broker."""

    __slots__ = (
        "active",
        "att",
        "base",
        "cancel",
        "cancelled",
        "cancelled_at",
        "crash",
        "dead",
        "dead_info",
        "deleted",
        "deleted_rec",
        "ea",
        "ended",
        "flow_count",
        "flow_held",
        "flow_limits",
        "flow_parked",
        "flow_rated",
        "flow_tat",
        "flow_wait",
        "lasterr",
        "lease",
        "levels",
        "meta",
        "paused",
        "pending",
        "queue",
        "ready",
        "scheduled",
        "schedules",
        "tasks",
        "unique",
        "unique_exp",
        "unique_of",
        "waiting",
        "wake",
    )

    def __init__(self, prefix: str, queue: str, levels: tuple[str, ...]) -> None:
        validate_name("queue", queue)
        self.queue = queue
        self.levels = levels
        self.base = base = f"{prefix}:{{{queue}}}"
        self.tasks = f"{base}:tasks"  # id -> immutable payload JSON
        self.att = f"{base}:att"  # id -> deliveries so far
        self.crash = f"{base}:crash"  # id -> lease expiries so far
        self.lease = f"{base}:lease"  # id -> lease token ("rand|worker"), + HASHTABLE_MEMBER
        self.ea = f"{base}:ea"  # id -> enqueued-at, server µs
        self.ready = f"{base}:ready"  # id -> became runnable again (promoted, reaped), µs
        self.lasterr = f"{base}:lasterr"  # id -> last error JSON (retrying tasks)
        self.active = f"{base}:active"  # zset id -> lease deadline ms, + HASHTABLE_MEMBER
        self.scheduled = f"{base}:scheduled"  # zset id -> due ms
        self.dead = f"{base}:dead"  # zset id -> died-at ms
        self.dead_info = f"{base}:dead_info"  # id -> dead record JSON
        # Deleted dead letters, restorable until their delete's window ends (engine/undo.py):
        # zset (lex, all scores 0) "<undo token>|<id>", and that member -> the letter's record.
        self.deleted = f"{base}:deleted"
        self.deleted_rec = f"{base}:deleted:rec"
        self.meta = f"{base}:meta"  # counters and queue settings
        self.paused = f"{base}:paused"
        # periodic task name -> latest tick handled, "<name>\trun" -> latest tick enqueued (ms)
        self.schedules = f"{base}:schedules"
        self.waiting = f"{base}:waiting"  # id -> how many processes wait for its end
        self.ended = f"{base}:ended"  # stream of (id, state) of waited-on tasks that ended
        self.cancel = f"{base}:cancel"  # id -> cancel requested (ms) for running tasks
        self.cancelled = f"{base}:cancelled"  # id -> record JSON of a cancelled task
        self.cancelled_at = f"{base}:cancelled_at"  # zset id -> cancelled at ms (TTL trim)
        self.wake = f"{base}:wake"
        self.pending = {level: f"{base}:pending:{level}" for level in levels}
        # Flow control (engine/flow.py): fleet-wide limits kept by the scripts.
        self.flow_limits = f"{base}:flow:limits"  # task name -> limit spec JSON
        self.flow_count = f"{base}:flow:count"  # slot key -> tasks running under it
        self.flow_held = f"{base}:flow:held"  # id -> slot keys it holds, newline separated
        self.flow_tat = f"{base}:flow:tat"  # task name -> next rate slot (GCRA), server ms
        self.flow_rated = f"{base}:flow:rated"  # id -> reserved rate slot ms (in `scheduled`)
        self.flow_parked = f"{base}:flow:parked"  # zset (lex) "slot\nseq\nid": waits for a slot
        self.flow_wait = f"{base}:flow:wait"  # id -> its member in `flow_parked`
        self.unique = f"{base}:unique"  # uniqueness digest -> id of the task holding it
        self.unique_exp = f"{base}:unique:exp"  # zset digest -> lock expiry ms
        self.unique_of = f"{base}:unique:of"  # id -> digest it releases when done

    def nudge(self, worker_id: str) -> str:
        """A worker's own wake-up list (list): `stop` pushes it to end the worker's blocking wait
        without cancelling a fetch whose reply may already carry leased tasks."""
        return f"{self.base}:nudge:{worker_id}"

    def fetch_mark(self, token: str) -> str:
        """Marks that a fetch under lease `token` ran (string, lives one lease): a second call
        with the same token is a retry whose first reply was lost."""
        return f"{self.base}:fetched:{token}"

    def result(self, task_id: str) -> str:
        """The result of one finished task (string with a TTL)."""
        return f"{self.base}:result:{task_id}"

    @property
    def flow_keys(self) -> list[str]:
        """The flow-control keys, in the order `lua/flow.lua` expects them at the END of KEYS."""
        return [
            self.flow_limits,
            self.flow_count,
            self.flow_held,
            self.flow_tat,
            self.flow_rated,
            self.flow_parked,
            self.flow_wait,
            self.unique,
            self.unique_exp,
            self.unique_of,
        ]

    @property
    def held_keys(self) -> list[str]:
        """The deleted-letter holding keys, in the order `lua/held.lua` expects them (the
        first keys after the pending lists)."""
        return [self.deleted, self.deleted_rec]

    @property
    def pending_keys(self) -> list[str]:
        """Pending lists, highest priority first."""
        return [self.pending[level] for level in self.levels]


def _hash_tag(key: str) -> str | None:
    """The part of `key` Redis Cluster hashes when it has one (`{…}`, non-empty), else None."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    return key[start + 1 : end] if end > start + 1 else None
