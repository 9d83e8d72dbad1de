-- settle(batch): the outcome of finished attempts, guarded by their lease tokens.
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   one result key per item, then the queue's flow keys (flow.lua).
-- ARGV = levels, result_ttl_ms, dead_max, dead_max_age_ms, then one argument per item:
--   kind .. id .. "\n" .. token .. "\n" .. delay_ms .. "\n" .. data
-- kind: "s" succeeded | "r" retry | "d" dead | "c" cancelled | "h" handed back (this worker
-- has no handler: back to the front of its level, or scheduled after delay_ms; not an
-- attempt); data: result JSON for "s",
-- last-error JSON for "r", dead record JSON for "d" (JSON never holds a raw newline). Whatever
-- the kind, a task whose cancel was requested while it ran ends as cancelled.
-- KEYS extra: one result key per item. Returns the positions (1-based) of the items rejected
-- (stale lease); every other item was applied. Usually empty: no reply value per task.
-- Leases are read for the whole batch in one call (per-item calls cost more in redis.call()
-- overhead than in the lookups themselves). The token alone decides: every script that ends
-- a lease removes the id from `active` and `lease` together.
local now = now_ms()
local ttl = tonumber(ARGV[2])
local dead_max = tonumber(ARGV[3])
local dead_age = tonumber(ARGV[4])
local n = #ARGV - 4
local kinds, ids, tokens, delays, datas = {}, {}, {}, {}, {}
-- Reads and checks come before the first write: a malformed item fails the whole call with
-- nothing written (Redis does not roll back a script's writes when it errors half way).
for i = 1, n do
  kinds[i], ids[i], tokens[i], delays[i], datas[i] =
    string.match(ARGV[4 + i], '^(.)([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
  if not kinds[i] or not tonumber(delays[i]) then
    return redis.error_reply('ERR settle: malformed item ' .. i)
  end
end
local held = bulk_read('HMGET', k.lease, ids)
local out = {}
local done = {}
local late = 0
local buried = false
-- Flow bookkeeping costs a lookup per item only while some task holds a slot or a lock, and
-- `forget` looks in the per-task hashes that first-attempt successes never write: all are
-- absent on the common path, so one EXISTS probes them all.
local any_held, any_unique, any_cancel = false, false, false
local optional = any_exist(fk.held, fk.unique_of, k.cancel, k.waiting,
  k.att, k.crash, k.lasterr, k.dead_info, k.ready, k.ea)
if optional and any_exist(fk.held, fk.unique_of, k.cancel, k.waiting) then
  any_held = redis.call('EXISTS', fk.held) == 1
  any_unique = redis.call('EXISTS', fk.unique_of) == 1
  any_cancel = redis.call('EXISTS', k.cancel) == 1
else
  any_waiting = false  -- notify_ended (common.lua) need not look again
end
local ended = {}
local handed = 0
for i = 1, n do
  local id = ids[i]
  -- A lease token that is not the current one means the lease was reclaimed: the late
  -- worker must not overwrite the new owner's outcome.
  if held[i] ~= tokens[i] then
    out[#out + 1] = i
    late = late + 1
  else
    local kind = kinds[i]
    ended[#ended + 1] = id
    if kind ~= 'c' and any_cancel and redis.call('HEXISTS', k.cancel, id) == 1 then kind = 'c' end
    if any_unique and kind ~= 'r' and kind ~= 'h' then unique_done(id) end
    if kind == 'c' then
      -- The delivery ended without success: count it (fetch does not write `att`).
      redis.call('HINCRBY', k.att, id, 1)
      finish_cancelled(id, redis.call('HGET', k.tasks, id), now)
    elseif kind == 's' then
      -- GET: its reply (nil, the key is new) reaches Lua as false, where SET's status reply
      -- became a new Lua table per task: 1.7 % of a drained task's server instructions.
      redis.call('SET', KEYS[FIRST_EXTRA_KEY + i - 1], datas[i], 'PX', ttl, 'GET')
      done[#done + 1] = id
      notify_ended(k, id, 'succeeded')
    elseif kind == 'h' then
      redis.call('ZREM', k.active, id)
      redis.call('HDEL', k.lease, id)
      local delay = tonumber(delays[i])
      if delay > 0 then
        redis.call('ZADD', k.scheduled, now + delay, id)
      else
        local p = redis.call('HGET', k.tasks, id)
        redis.call('RPUSH', pending[p and payload_level(p) or '__default'] or pending['__default'], id)
        handed = handed + 1
      end
      redis.call('HINCRBY', k.meta, 'handed_back', 1)
    else
      -- The delivery ended without success: count it (fetch does not write `att`).
      redis.call('HINCRBY', k.att, id, 1)
      if kind == 'r' then
        redis.call('ZREM', k.active, id)
        redis.call('HDEL', k.lease, id)
        redis.call('HSET', k.lasterr, id, datas[i])
        redis.call('ZADD', k.scheduled, now + tonumber(delays[i]), id)
      else
        bury(k, id, datas[i], now)
        buried = true
      end
    end
  end
end
if #done > 0 then
  bulk('ZREM', k.active, done)
  forget(k, done, not optional)
end
if late > 0 then redis.call('HINCRBY', k.meta, 'late', late) end
if buried then trim_dead(k, now, dead_max, dead_age) end
-- Settle takes no wake cap argument: 64 is the engine's default cap.
local unparked = 0
if any_held then unparked = flow_release_many(ended) end
if unparked + handed > 0 then wake(k, 64) end
return out
