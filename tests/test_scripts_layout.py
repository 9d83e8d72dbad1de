"""engine.scripts: each function gets exactly the queue keys its Lua names (KEYS layouts)."""

from __future__ import annotations

import pytest

from engine.scripts import LAYOUTS, QUEUE_KEY_NAMES, SCRIPT_NAMES, _helpers, _layout

SHARED = """
local function outer(k, ids)
  inner(k)
  redis.call('HDEL', k.tasks, unpack(ids))
end

local function inner(k)
  redis.call('DEL', k.lease)
end

local function unused(k)
  redis.call('DEL', k.dead)
end
"""


def test_a_layout_follows_helpers_through_helpers() -> None:
    """Keys named in helpers the body calls, directly or not, are in; others are not; a flow
    key (fk.…) or a field of another table is not a queue key."""
    body = "outer(k, {'a'})\nlocal x = fk.limits .. other.k.att\nredis.call('GET', k.meta)"
    assert _layout(body, _helpers(SHARED)) == ("tasks", "lease", "meta")


def test_an_unknown_key_name_is_refused() -> None:
    """A typo in the Lua would leave a key out of KEYS: it fails at import, not at run."""
    with pytest.raises(ValueError, match="leese"):
        _layout("redis.call('GET', k.leese)", {})


def test_every_function_has_a_layout_led_by_its_queue() -> None:
    """`tasks` first (setup's cache and flow_setup identify the queue by KEYS[1]); the hot
    functions get only what they use."""
    assert set(LAYOUTS) == set(SCRIPT_NAMES)
    for layout in LAYOUTS.values():
        assert layout[0] == "tasks" and set(layout) <= set(QUEUE_KEY_NAMES)
    assert LAYOUTS["enqueue"] == ("tasks", "scheduled", "meta", "wake")
    assert "cancelled_at" not in LAYOUTS["fetch"]
