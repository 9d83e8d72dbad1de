"""Undo of deleted dead letters: a delete holds its letters, restorable for a while.

Every operator delete (one letter, marked ones, or everything matching a filter) runs under one
undo token. `delete_dead.lua` moves each letter into its queue's holding area in the same
script that removes it from the dead set; `restore_dead.lua` moves the letters of one token
back, with their died-at time, error record, group and payload as they were. The token is
`<expiry ms, 13 digits>-<8 hex>`: its window is readable from the token alone, and the holding
zset sorts by it (see `lua/held.lua`). Held letters are pruned when their window ends (by the
reaper, and by every delete and restore) and at most `EngineConfig.deleted_max` are held per
queue: beyond that, the deletes that expire first are dropped for good.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from engine.broker import Broker, _s

#: Letters restored per script call: a bounded call keeps the server responsive.
RESTORE_BATCH = 1000

_TOKEN_RE = re.compile(r"(\d{13})-[0-9a-f]{8}")


def expiry_of(token: str) -> int:
    """When the restore window of `token` ends (epoch ms); ValueError if it is no token."""
    match = _TOKEN_RE.fullmatch(token) if isinstance(token, str) else None
    if match is None:
        raise ValueError(f"invalid undo token {token!r}: expected 13 digits, '-', 8 hex digits")
    return int(match.group(1))


async def server_ms(broker: Broker) -> int:
    """The server's clock in epoch ms (the clock the scripts prune by)."""
    seconds, micros = await broker.redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def new_undo(broker: Broker) -> str:
    """A fresh undo token for one delete action; "" when the restore window is 0 (deletes are
    final)."""
    window_ms = int(broker.config.restore_window_s * 1000)
    if window_ms <= 0:
        return ""
    return f"{await server_ms(broker) + window_ms:013d}-{os.urandom(4).hex()}"


@dataclass(frozen=True, slots=True)
class HeldDelete:
    """What one delete still holds: the letters that would come back, per queue."""

    token: str
    expires_at_ms: int
    expired: bool
    by_queue: dict[str, int]

    @property
    def count(self) -> int:
        """Letters a restore would bring back now."""
        return sum(self.by_queue.values())


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did: letters back in the dead set, letters whose id is in use again
    (enqueued anew since the delete: they stay deleted), and whether the window had ended."""

    restored: int
    id_in_use: int
    expired: bool
    expires_at_ms: int


async def held(broker: Broker, token: str) -> HeldDelete:
    """The letters `token`'s delete still holds, per queue (none once its window ended)."""
    expires = expiry_of(token)
    now = await server_ms(broker)
    if now >= expires:
        return HeldDelete(token, expires, True, {})
    queues = await broker.known_queues()
    first, last = f"[{token}|", f"({token}}}"
    async with broker.redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.zlexcount(broker.keys(queue).deleted, first, last)
        counts = await pipe.execute()
    by_queue = {q: int(n) for q, n in zip(queues, counts, strict=True) if int(n)}
    return HeldDelete(token, expires, False, by_queue)


async def restore(broker: Broker, token: str) -> Restored:
    """Move every letter `token`'s delete still holds back into the dead set."""
    found = await held(broker, token)
    restored = in_use = 0
    for queue in found.by_queue:
        while True:
            done, taken, left = await broker.restore_dead(queue, token, RESTORE_BATCH)
            restored += done
            in_use += taken
            # Nothing moved with letters left: the window ended meanwhile and they were pruned.
            if not left or not (done or taken):
                break
    return Restored(restored, in_use, found.expired, found.expires_at_ms)


async def held_deletes(broker: Broker) -> list[HeldDelete]:
    """Every delete still restorable, the one expiring last first."""
    tokens: dict[str, dict[str, int]] = {}
    for queue in await broker.known_queues():
        async for member, _score in broker.redis.zscan_iter(
            broker.keys(queue).deleted, count=1000
        ):
            token = _s(member).partition("|")[0]
            per_queue = tokens.setdefault(token, {})
            per_queue[queue] = per_queue.get(queue, 0) + 1
    now = await server_ms(broker)
    out = [HeldDelete(t, expiry_of(t), False, q) for t, q in tokens.items() if expiry_of(t) > now]
    out.sort(key=lambda h: h.expires_at_ms, reverse=True)
    return out
