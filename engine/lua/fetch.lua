-- fetch(n): ARGV = levels, n, lease_ms, token, promote_limit, wake_cap.
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   the fetch mark of `token` (keys.fetch_mark); then the queue's flow keys (flow.lua).
-- Pops up to n ids, highest level first, FIFO within a level, into `active` under a lease.
-- With the queue's `max_wait` set (meta, ms), a lower-level task that waited that long is
-- served first. Tasks over a rate or concurrency limit (flow.lua) are handed back inside the
-- script; a call inspects a bounded number of them, and wakes another fetcher if work is left.
-- Returns {now_ms, next_due_ms or -1, now_us, width, then per task `width` values}: width 2,
-- the common case (nothing was ever retried, delayed or reaped, no stamp outside a payload):
-- id, payload, the task a first attempt whose enqueue time is the payload's "e"; width 5:
-- id, payload, attempts, enqueued_at_us or '' (in the payload), ready_at_us or '' (when a
-- delayed/retried/reaped task became runnable). Three values fewer per task cost the server
-- less to build and send.
local now = now_ms()
local now_us = now_us_str()
-- At most 1,000 per call (the broker loops for more): ids are popped before the reads that
-- follow, so nothing after the pops may fail on size.
local n = math.min(tonumber(ARGV[2]), 1000)
local lease_ms = tonumber(ARGV[3])
local token = ARGV[4]
-- A second call with the same token is a retry whose first reply was lost (redis-py retries
-- on a dropped connection; the broker reuses the token of a fetch that failed): it returns
-- the tasks still leased under the token as well, or their leases would expire as if a worker
-- had died running them (and count towards crash_loop). Rare, so the lease scan is fine.
-- The mark is set only by a call that leased something: an empty fetch, whose lost reply
-- loses nothing, writes no key.
local mark = KEYS[FIRST_EXTRA_KEY]
-- The mark, paused, delayed or retried tasks, flow limits: all absent on the common path, so
-- one EXISTS probes them all (EXISTS counts the keys that exist).
local probe = redis.call('EXISTS', mark, k.paused, k.scheduled, k.ready, k.att, fk.limits, fk.rated,
  k.ea)
local again = {}
local optional = false
if probe > 0 then
  local marked = redis.call('EXISTS', mark)
  optional = probe > marked
  if marked == 1 then
    local leases = redis.call('HGETALL', k.lease)
    for i = 1, #leases, 2 do
      if leases[i + 1] == token then again[#again + 1] = leases[i] end
    end
    n = math.max(0, n - #again)
  end
end
if optional then promote_due(k, pending, now, tonumber(ARGV[5])) end
local out = {now, -1, now_us, optional and 5 or 2}
if optional and redis.call('EXISTS', k.paused) == 1 then
  if #again == 0 then
    local nxt = redis.call('ZRANGE', k.scheduled, 0, 0, 'WITHSCORES')
    if #nxt > 0 then out[2] = tonumber(nxt[2]) end
    return out
  end
  n = 0  -- paused: only what the lost reply carried
end
-- The queue's max_wait (µs), read only when it can matter (see below); 0 = off.
local max_wait_us = 0
local function read_max_wait()
  return tonumber(redis.call('HGET', k.meta, 'max_wait_ms') or '0') * 1000
end

-- Pop up to `want` ids into `into`: starving lower-level tasks first (max_wait), then by
-- level. `taken`, when given, gets how many came from each level (see `unpop`).
local function pop(into, want, taken)
  local goal = #into + want
  if max_wait_us > 0 then
    local cutoff = tonumber(now_us) - max_wait_us
    for i = 2, NLEVELS do
      while #into < goal do
        local id = redis.call('LINDEX', pending[levels[i]], -1)
        if not id then break end
        local since = redis.call('HGET', k.ready, id)
          or enqueued_us(k, id, redis.call('HGET', k.tasks, id))
        if not since or tonumber(since) > cutoff then break end
        redis.call('RPOP', pending[levels[i]])
        redis.call('HINCRBY', k.meta, 'starved', 1)
        into[#into + 1] = id
      end
    end
  end
  for i = 1, NLEVELS do
    if #into >= goal then break end
    local popped = redis.call('RPOP', pending[levels[i]], goal - #into)
    if popped then
      for _, id in ipairs(popped) do into[#into + 1] = id end
      if taken then taken[i] = #popped end
    end
  end
end

-- Put ids popped by level (no starving ones) back at the right end of their lists, in order.
local function unpop(ids, taken)
  local at = 1
  for i = 1, NLEVELS do
    local count = taken[i]
    if count then
      local back = {}
      for j = at + count - 1, at, -1 do back[#back + 1] = ids[j] end
      redis.call('RPUSH', pending[levels[i]], unpack(back))
      at = at + count
    end
  end
end

local ids = {}
local payloads = {}
local inspected_all = true
if not optional or redis.call('EXISTS', fk.limits) == 0 then
  local taken = {}
  pop(ids, n, taken)
  -- Starving tasks (max_wait) can only have been passed over when the fetch took less than
  -- everything pending, so only a full fetch reads the setting; when it is on, the ids go
  -- back and are popped again, starving ones first.
  if n > 0 and #ids >= n and NLEVELS > 1 then
    max_wait_us = read_max_wait()
    if max_wait_us > 0 then
      unpop(ids, taken)
      ids = {}
      pop(ids, n)
    end
  end
  if #ids > 0 then payloads = bulk_read('HMGET', k.tasks, ids) end
else
  max_wait_us = read_max_wait()
  -- Hand-backs are bounded per call so one fetch never holds the server for long.
  local budget = math.max(4 * n, 256)
  local inspected = 0
  while #ids < n do
    local batch = {}
    pop(batch, n - #ids)
    if #batch == 0 then break end
    inspected = inspected + #batch
    local ps = bulk_read('HMGET', k.tasks, batch)
    for i, id in ipairs(batch) do
      local p = ps[i]
      if p and not flow_admit(id, p, now) then
        ids[#ids + 1] = id
        payloads[#ids] = p
      elseif not p then
        ids[#ids + 1] = id
        payloads[#ids] = false
      end
    end
    if inspected >= budget then
      inspected_all = false
      break
    end
  end
  flow_commit()
end
if #again > 0 then
  local ps = bulk_read('HMGET', k.tasks, again)
  for i, id in ipairs(again) do
    ids[#ids + 1] = id
    payloads[#ids] = ps[i]
  end
end
if optional then
  local nxt = redis.call('ZRANGE', k.scheduled, 0, 0, 'WITHSCORES')
  if #nxt > 0 then out[2] = tonumber(nxt[2]) end
end
local more = false
if #ids >= n or not inspected_all then
  for i = 1, NLEVELS do
    if redis.call('LLEN', pending[levels[i]]) > 0 then more = true break end
  end
end
-- Chain wake-ups: work remains, so let another idle fetcher (maybe on another host) in.
if more then wake(k, tonumber(ARGV[6])) end
if #ids == 0 then return out end
-- A rate reservation is spent when its task runs, even if its limit was removed meanwhile.
if optional and redis.call('EXISTS', fk.rated) == 1 then bulk('HDEL', fk.rated, ids) end
-- `ready`, `att` and `ea` are empty while nothing is retried or delayed and every payload
-- carries its stamp: skip reading them then.
local function read_if_any(key)
  if not optional or redis.call('EXISTS', key) == 0 then return {} end
  return bulk_read('HMGET', key, ids)
end
local readies = read_if_any(k.ready)
-- `att` counts deliveries that ended without success (written when a lease ends: retry,
-- dead, expiry), so this delivery is one more and a first delivery writes nothing.
local atts = read_if_any(k.att)
local eas = read_if_any(k.ea)
local deadline = now + lease_ms
local zargs = {}
local largs = {}
for i, id in ipairs(ids) do
  local p = payloads[i]
  if p then
    local a = (tonumber(atts[i]) or 0) + 1
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    largs[#largs + 1] = id
    largs[#largs + 1] = token
    out[#out + 1] = id
    out[#out + 1] = p
    if optional then
      out[#out + 1] = a
      out[#out + 1] = eas[i] or ''
      out[#out + 1] = readies[i] or ''
    end
  end
end
if #zargs > 0 then
  zargs[#zargs + 1] = '+inf'
  zargs[#zargs + 1] = HASHTABLE_MEMBER
  largs[#largs + 1] = HASHTABLE_MEMBER
  largs[#largs + 1] = ''
  bulk('ZADD', k.active, zargs)
  bulk('HSET', k.lease, largs)
  redis.call('SET', mark, '1', 'PX', lease_ms)
end
return out
