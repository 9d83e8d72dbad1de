-- settle(batch): the outcome of finished attempts, guarded by their lease tokens.
-- ARGV = levels, result_ttl_ms, dead_max, dead_max_age_ms, then one argument per item:
--   kind .. id .. "\n" .. token .. "\n" .. delay_ms .. "\n" .. data
-- kind: "s" succeeded | "r" retry | "d" dead | "c" cancelled; data: result JSON for "s",
-- last-error JSON for "r", dead record JSON for "d" (JSON never holds a raw newline). Whatever
-- the kind, a task whose cancel was requested while it ran ends as cancelled.
-- KEYS extra: one result key per item. Returns one flag per item: 1 applied, 0 rejected (stale).
local now = now_ms()
local ttl = tonumber(ARGV[2])
local dead_max = tonumber(ARGV[3])
local dead_age = tonumber(ARGV[4])
local out = {}
local done = {}
local late = 0
local buried = false
-- Flow bookkeeping costs a lookup per item only while some task holds a slot or a lock.
local any_held = redis.call('EXISTS', fk.held) == 1
local any_unique = redis.call('EXISTS', fk.unique_of) == 1
local unparked = 0
local any_cancel = redis.call('EXISTS', k.cancel) == 1
for i = 0, #ARGV - 5 do
  local kind, id, token, delay, data = string.match(ARGV[5 + i], '^(.)([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
  delay = tonumber(delay)
  -- A lease token that is not the current one means the lease was reclaimed: the late
  -- worker must not overwrite the new owner's outcome.
  if redis.call('HGET', k.lease, id) ~= token or not redis.call('ZSCORE', k.active, id) then
    out[#out + 1] = 0
    late = late + 1
  else
    out[#out + 1] = 1
    if any_held then unparked = unparked + flow_release(id) end
    if kind ~= 'c' and any_cancel and redis.call('HEXISTS', k.cancel, id) == 1 then kind = 'c' end
    if any_unique and kind ~= 'r' then unique_done(id) end
    if kind == 'c' then
      finish_cancelled(id, redis.call('HGET', k.tasks, id), now)
    elseif kind == 's' then
      redis.call('SET', KEYS[FIRST_EXTRA_KEY + i], data, 'PX', ttl)
      done[#done + 1] = id
      notify_ended(k, id, 'succeeded')
    elseif kind == 'r' then
      redis.call('ZREM', k.active, id)
      redis.call('HDEL', k.lease, id)
      redis.call('HSET', k.lasterr, id, data)
      redis.call('ZADD', k.scheduled, now + delay, id)
    else
      bury(k, id, data, now)
      buried = true
    end
  end
end
if #done > 0 then
  redis.call('ZREM', k.active, unpack(done))
  forget(k, done)
end
if late > 0 then redis.call('HINCRBY', k.meta, 'late', late) end
if buried then trim_dead(k, now, dead_max, dead_age) end
-- Settle takes no wake cap argument: 64 is the engine's default cap.
if unparked > 0 then wake(k, 64) end
return out
