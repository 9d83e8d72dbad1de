"""The benchmark prefixes one test used, so its cleanup check sees only its own runs.

Every benchmark works under a fresh `spoolbench-<random>` prefix and deletes it at the end.
A check for "no `spoolbench-*` key left" is wrong when tests run in parallel on one server
(pytest-xdist workers sharing `SPOOL_TEST_REDIS_URL`): another test's run is still going.
So the `bench_prefixes` fixture (conftest.py) records each prefix handed out during the test,
and `leftover_keys` looks under those alone.
"""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from engine.bench import runner, soak

_made: list[str] = []


def track(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now until the test ends, remember every benchmark prefix handed out."""
    _made.clear()
    real = runner.new_prefix

    def recording() -> str:
        prefix = real()
        _made.append(prefix)
        return prefix

    monkeypatch.setattr(runner, "new_prefix", recording)
    monkeypatch.setattr(soak, "new_prefix", recording)


async def leftover_keys(redis: Redis) -> list[bytes]:
    """Keys still under the prefixes this test's benchmarks used (it must have used one)."""
    assert _made, "no benchmark ran under a recorded prefix"
    return [k for p in _made async for k in redis.scan_iter(match=f"{p}:*", count=1000)]
