-- Deleted dead letters held for undo (engine/undo.py), for the functions that delete, restore
-- or prune them (they call `held_setup` after `setup`). Their two keys are the first KEYS
-- after the pending lists.
-- `held` is a zset whose scores are all 0, so it sorts by member: "<undo token>|<id>", and a
-- token starts with its expiry in ms as 13 digits. Lex order is then expiry order: the
-- expired are a prefix range, one delete's letters are the range "<token>|" .. "<token>}"
-- ('}' follows '|'), and ZPOPMIN drops the deletes that expire first.
local held, held_rec
local function held_setup(KEYS)
  held, held_rec = KEYS[FIRST_EXTRA_KEY], KEYS[FIRST_EXTRA_KEY + 1]
end

-- Drop held letters whose window has ended (expiry <= now, as engine/undo.py reads a token),
-- at most `limit` per call. The bound is now + 1: a member of a token expiring at `now`
-- ("<now>-…") sorts after "<now>", so "(<now>" would keep it one millisecond too long.
local function prune_held(now, limit)
  local old = redis.call('ZRANGEBYLEX', held, '-', '(' .. string.format('%013d', now + 1),
    'LIMIT', 0, limit)
  if #old > 0 then
    bulk('ZREM', held, old)
    bulk('HDEL', held_rec, old)
  end
  return #old
end

-- Keep at most `max` held letters: the ones that would expire first go for good.
local function trim_held(max)
  local over = redis.call('ZCARD', held) - max
  while over > 0 do
    local n = math.min(over, 1000)
    local popped = redis.call('ZPOPMIN', held, n)
    local members = {}
    for i = 1, #popped, 2 do members[#members + 1] = popped[i] end
    bulk('HDEL', held_rec, members)
    over = over - n
  end
end
