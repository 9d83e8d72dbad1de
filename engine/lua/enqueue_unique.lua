-- enqueue_unique(batch): ARGV = levels, wake_cap, then one item per task:
-- "level\ndelay_ms\nid\ndigest\nwindow_ms\nmode\npayload"; mode 'w': the lock lasts the window;
-- 'd': it also ends when the task ends (succeeded, dead, cancelled).
-- KEYS extra: one result key per task, then the flow keys (flow.lua).
-- Returns, per task, the id of the task holding its uniqueness (its own id when stored, the
-- first task's id when one is still within its window), then the meta `registered` flag (see
-- enqueue.lua).
local now = now_ms()
local now_us = now_us_str()
local out = {}
local pushed = 0
for i = 3, #ARGV do
  local level, delay, id, digest, window, mode, body =
    string.match(ARGV[i], '^([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)}$')
  if not body or not pending[level] or not tonumber(delay) or not tonumber(window) then
    return redis.error_reply('ERR enqueue_unique: malformed item ' .. (i - 2))
  end
  local holder = redis.call('HGET', fk.unique, digest)
  if holder then
    local exp = tonumber(redis.call('ZSCORE', fk.unique_exp, digest) or '0')
    if exp <= now then holder = nil end
  end
  if holder then
    out[#out + 1] = holder
  elseif redis.call('HEXISTS', k.tasks, id) == 1 or redis.call('EXISTS', KEYS[FIRST_EXTRA_KEY + i - 3]) == 1 then
    out[#out + 1] = id  -- idempotent by id, as in enqueue
  else
    redis.call('HSET', k.tasks, id, stamped(body, now_us))
    delay = tonumber(delay)
    if delay > 0 then
      redis.call('ZADD', k.scheduled, now + delay, id)
    else
      redis.call('LPUSH', pending[level], id)
      pushed = pushed + 1
    end
    redis.call('HSET', fk.unique, digest, id)
    redis.call('ZADD', fk.unique_exp, now + tonumber(window), digest)
    if mode == 'd' then redis.call('HSET', fk.unique_of, id, digest) end
    out[#out + 1] = id
  end
end
if pushed > 0 then wake(k, tonumber(ARGV[2])) end
out[#out + 1] = redis.call('HSETNX', k.meta, 'registered', '1')
return out
