-- enqueue(batch): ARGV = levels, wake_cap, then per task: id, level, delay_ms, payload.
-- KEYS extra: one result key per task (an id whose result still exists is the same task).
-- Returns one flag per task: 1 stored, 0 already known (idempotent by id).
local now = now_ms()
local wake_cap = tonumber(ARGV[2])
local out = {}
local pushed = 0
local n = (#ARGV - 2) / 4
for i = 0, n - 1 do
  local base = 3 + i * 4
  local id, level, delay, payload = ARGV[base], ARGV[base + 1], tonumber(ARGV[base + 2]), ARGV[base + 3]
  if redis.call('HEXISTS', k.tasks, id) == 1 or redis.call('EXISTS', KEYS[FIRST_EXTRA_KEY + i]) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', k.tasks, id, payload)
    redis.call('HSET', k.ea, id, now)
    if delay > 0 then
      redis.call('ZADD', k.scheduled, now + delay, id)
    else
      redis.call('LPUSH', pending[level], id)
      pushed = pushed + 1
    end
    out[#out + 1] = 1
  end
end
if pushed > 0 then wake(k, wake_cap) end
return out
