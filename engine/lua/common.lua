-- Shared helpers at the top of the function library engine/scripts.py builds: created once
-- when the library loads, not on every call (as a script's prelude would be: that set-up was
-- ~60 % of what an empty fetch cost). Every function's KEYS start with the layout `setup`
-- (end of this file) reads: `k`, then one pending list per level.

-- One TIME per script call: every stamp of a call is the same instant, and each redis.call()
-- costs server CPU beyond the command itself.
local server_time = nil
local function now_ms()
  server_time = server_time or redis.call('TIME')
  return tonumber(server_time[1]) * 1000 + math.floor(tonumber(server_time[2]) / 1000)
end

-- Microseconds since the epoch as an exact decimal string (a Lua number would print in
-- scientific notation and lose digits): enqueue and fetch stamps, so queue waits well under a
-- millisecond are measurable.
local function now_us_str()
  server_time = server_time or redis.call('TIME')
  return server_time[1] .. string.rep('0', 6 - #server_time[2]) .. server_time[2]
end

-- Whether any of these keys exists, in one call. The keys a script checks before optional
-- work (retries, flow limits, waiters, cancels) are all absent on the common path, and one
-- EXISTS of several keys costs about what one of a single key does.
local function any_exist(...)
  return redis.call('EXISTS', ...) > 0
end

-- The payload is produced by engine/codec.py, which always writes the level first and the
-- max_retries field as "r"; matching beats decoding a possibly large JSON document.
local function payload_level(payload)
  return string.match(payload, '^{"l":"([^"]+)"')
end

local function payload_max_retries(payload)
  return tonumber(string.match(payload, '"r":(%d+)') or '0')
end

local function payload_name(payload)
  return string.match(payload, '"n":"([^"]*)"') or '?'
end

-- The enqueue time (server µs) is the payload's last field, "e", written by the function that
-- stores the task: one hash entry per task instead of a second one in `ea` (written at enqueue,
-- read at fetch, deleted at settle: 6.6 % of a drained task's server instructions). `body` is
-- the encoded payload without its closing brace (engine/codec.py never writes an empty one).
local function stamped(body, now_us)
  return body .. ',"e":' .. now_us .. '}'
end

-- A task's enqueue time in µs (a string), from its payload or, for a task stored by a version
-- before the stamp moved into the payload, from `ea`.
local function enqueued_us(k, id, payload)
  return payload and string.match(payload, ',"e":(%d+)}$') or redis.call('HGET', k.ea, id)
end

-- Lua's unpack() fails past a few thousand values, so long argument lists go out in chunks
-- (of an even size: HSET and ZADD take pairs).
local CHUNK = 4000

-- A member of `active` (score +inf: never due, never reaped) and a field of `lease` that no
-- task id can be (ids have no spaces or '|'), longer than the 64 bytes up to which Redis keeps
-- a small zset or hash as a listpack. A listpack lookup scans every entry (~190 instructions
-- each), and with 64-128 tasks in flight a fetch and settle make five per task: 33 % of a
-- drain's server instructions (callgrind, 92.2k -> 61.4k per task without listpacks). Both
-- keys hold it from their first task on, so they are hash tables whatever their size.
-- engine/keys.py names it too (`HASHTABLE_MEMBER`), for the readers that count or list.
local HASHTABLE_MEMBER = '| spool: keeps this a hash table; a listpack scans on every lookup |'
local function bulk(cmd, key, args)
  for i = 1, #args, CHUNK do
    redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK - 1, #args)))
  end
end

-- The same for reads of one value per argument (HMGET, ZMSCORE): the replies, concatenated.
local function bulk_read(cmd, key, args)
  if #args <= CHUNK then return redis.call(cmd, key, unpack(args)) end
  local out = {}
  for i = 1, #args, CHUNK do
    local part = redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK - 1, #args)))
    -- A missing value arrives as false, not nil, so # counts every reply.
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- Drop every per-task field of ids that left the queue for good. The hashes most tasks never
-- touch (first-attempt successes write no attempts, crashes, errors or ready stamps) are
-- skipped when empty: an HDEL still converts every argument, which cost more than the rest of
-- a batched settle. `sparse_absent`: the caller saw none of them exist (no need to look again).
local function forget(k, ids, sparse_absent)
  if #ids == 0 then return end
  bulk('HDEL', k.tasks, ids)
  bulk('HDEL', k.lease, ids)
  -- `ea` only holds the stamps of tasks stored by an earlier version (see `stamped`).
  if sparse_absent or not any_exist(k.att, k.crash, k.lasterr, k.dead_info, k.ready, k.ea) then
    return
  end
  for _, key in ipairs({k.att, k.crash, k.lasterr, k.dead_info, k.ready, k.ea}) do
    if redis.call('EXISTS', key) == 1 then bulk('HDEL', key, ids) end
  end
end

-- Keep the dead-letter set within its count and age caps, oldest out first.
local function trim_dead(k, now, dead_max, dead_max_age_ms)
  local evicted = 0
  local old = redis.call('ZRANGEBYSCORE', k.dead, '-inf', now - dead_max_age_ms, 'LIMIT', 0, 1000)
  if #old > 0 then
    bulk('ZREM', k.dead, old)
    forget(k, old)
    evicted = evicted + #old
  end
  local over = redis.call('ZCARD', k.dead) - dead_max
  while over > 0 do
    local n = math.min(over, 1000)
    local popped = redis.call('ZPOPMIN', k.dead, n)
    local ids = {}
    for i = 1, #popped, 2 do ids[#ids + 1] = popped[i] end
    forget(k, ids)
    evicted = evicted + #ids
    over = over - n
  end
  if evicted > 0 then redis.call('HINCRBY', k.meta, 'evicted', evicted) end
  return evicted
end

-- A task ended for good (succeeded, dead, cancelled): tell whoever waits for it
-- (engine/results.py). Waiters register in `waiting`; only their tasks go on the `ended`
-- stream, so tasks no one waits on cost one HLEN per script call.
local any_waiting = nil
local ENDED_MAXLEN = 10000
local function notify_ended(k, id, state)
  if any_waiting == nil then any_waiting = redis.call('HLEN', k.waiting) > 0 end
  if any_waiting and redis.call('HDEL', k.waiting, id) == 1 then
    redis.call('XADD', k.ended, 'MAXLEN', '~', ENDED_MAXLEN, '*', 'id', id, 'state', state)
  end
end

-- Move a task to the dead-letter set with its record (JSON made by the caller).
local function bury(k, id, record, now)
  notify_ended(k, id, 'dead')
  redis.call('ZREM', k.active, id)
  redis.call('ZREM', k.scheduled, id)
  redis.call('HDEL', k.lease, id)
  redis.call('HDEL', k.lasterr, id)
  redis.call('ZADD', k.dead, now, id)
  redis.call('HSET', k.dead_info, id, record)
end

-- Scheduled tasks whose time has come go to the tail of their level's pending list.
local function promote_due(k, pending, now, limit)
  local due = redis.call('ZRANGEBYSCORE', k.scheduled, '-inf', now, 'LIMIT', 0, limit)
  if #due == 0 then return 0 end
  local payloads = bulk_read('HMGET', k.tasks, due)
  bulk('ZREM', k.scheduled, due)
  local ready_at = now_us_str()
  local moved = 0
  for i, id in ipairs(due) do
    local p = payloads[i]
    if p then
      local key = pending[payload_level(p)] or pending['__default']
      redis.call('LPUSH', key, id)
      redis.call('HSET', k.ready, id, ready_at)
      moved = moved + 1
    else
      forget(k, {id})
    end
  end
  return moved
end

local function wake(k, cap)
  if redis.call('LPUSH', k.wake, '1') > cap then redis.call('LTRIM', k.wake, 0, cap - 1) end
end

-- KEYS layout of every queue function: the queue keys it uses (its LAYOUT, made by
-- engine/scripts.py from the `k.<name>` its code and helpers name; `tasks` always first), then
-- one pending list per level (highest first), then any per-task keys it needs. Set by `setup`.
local k, levels, pending, NLEVELS, FIRST_EXTRA_KEY

-- A task ends as cancelled: its record is kept like a result (reap trims it by age), it is
-- never retried nor dead-lettered, and whoever waits for it hears of it.
local function finish_cancelled(id, p, now)
  local ea = tonumber(enqueued_us(k, id, p) or '0')
  redis.call('HSET', k.cancelled, id, cjson.encode({
    state = 'cancelled', name = p and payload_name(p) or '?',
    attempts = tonumber(redis.call('HGET', k.att, id) or '0'),
    enqueued_at_ms = math.floor(ea / 1000), finished_at_ms = now,
  }))
  redis.call('ZADD', k.cancelled_at, now, id)
  redis.call('ZREM', k.active, id)
  redis.call('ZREM', k.scheduled, id)
  redis.call('HDEL', k.cancel, id)
  forget(k, {id})
  notify_ended(k, id, 'cancelled')
end

-- First thing in every function: forget the previous call's state, and read the key layout
-- unless this function was last called for the same queue and levels (the usual case:
-- building it was a fifth of an empty fetch). Each layout keeps its own, as a worker's calls
-- alternate between functions. ARGV[1] is always the level names, comma separated, highest
-- first.
local built = {}  -- layout -> {queue's tasks key, levels, k, levels, pending, first extra key}
local function setup(KEYS, ARGV, layout)
  server_time, any_waiting = nil, nil
  local b = built[layout]
  if b and b[1] == KEYS[1] and b[2] == ARGV[1] then
    k, levels, pending, FIRST_EXTRA_KEY = b[3], b[4], b[5], b[6]
    NLEVELS = #levels
    return
  end
  k = {}
  for i, name in ipairs(layout) do k[name] = KEYS[i] end
  local fixed = #layout
  levels, pending = {}, {}
  local i = 0
  for level in string.gmatch(ARGV[1], '[^,]+') do
    i = i + 1
    levels[i] = level
    pending[level] = KEYS[fixed + i]
  end
  pending['__default'] = KEYS[fixed + math.ceil(i / 2)]
  NLEVELS = #levels
  FIRST_EXTRA_KEY = fixed + NLEVELS + 1
  built[layout] = {KEYS[1], ARGV[1], k, levels, pending, FIRST_EXTRA_KEY}
end
