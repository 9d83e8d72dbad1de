-- enqueue(batch): ARGV = levels, wake_cap, then one item per task: "level\ndelay_ms\nid\npayload"
-- (one argument per task keeps the client's command packing cheap; JSON has no raw newline).
-- KEYS extra: one result key per task (an id whose result still exists is the same task).
-- Returns one flag per task: 1 stored, 0 already known (idempotent by id), then one more flag:
-- 1 when the queue's meta had no `levels` (the server lost the queue's registration, e.g. a
-- restart without persistence), so the caller must add it to the global queue set again.
local now = now_ms()
local now_us = now_us_str()
local wake_cap = tonumber(ARGV[2])
local out = {}
local pushed = 0
for i = 3, #ARGV do
  local level, delay, id, payload = string.match(ARGV[i], '^([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)$')
  delay = tonumber(delay)
  if redis.call('HEXISTS', k.tasks, id) == 1 or redis.call('EXISTS', KEYS[FIRST_EXTRA_KEY + i - 3]) == 1 then
    out[#out + 1] = 0
  else
    redis.call('HSET', k.tasks, id, payload)
    redis.call('HSET', k.ea, id, now_us)
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
out[#out + 1] = redis.call('HSETNX', k.meta, 'levels', ARGV[1])
return out
