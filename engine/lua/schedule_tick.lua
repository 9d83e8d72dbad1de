-- schedule_tick(name, tick): ARGV = levels, name, tick_ms, wake_cap, then the task as enqueue
-- takes it: "level\n0\nid\npayload". KEYS extra: the queue's `schedules` hash, the task's
-- result key. Enqueues the tick's task unless this tick (or a later one) was enqueued already
-- by any worker, or the tick is still in the future by the server's clock.
-- The first tick a schedule is ever seen at is only recorded: it starts at the next one.
-- Returns 1 enqueued, 0 already done (or first seen), -1 not due yet (the caller's clock runs
-- ahead of the server's).
local schedules = KEYS[FIRST_EXTRA_KEY]
local result_key = KEYS[FIRST_EXTRA_KEY + 1]
local name, tick = ARGV[2], tonumber(ARGV[3])
local level, _delay, id, body = string.match(ARGV[5], '^([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)}$')
if not body or not pending[level] then return redis.error_reply('ERR schedule_tick: malformed task') end
local now = now_ms()
if tick > now then return -1 end
local last = redis.call('HGET', schedules, name)
redis.call('HSET', schedules, name, math.max(tick, tonumber(last or '0')))
if not last or tonumber(last) >= tick then return 0 end
if redis.call('HEXISTS', k.tasks, id) == 1 or redis.call('EXISTS', result_key) == 1 then
  return 0
end
redis.call('HSET', schedules, name .. '\trun', tick)  -- the last tick that did run
redis.call('HSET', k.tasks, id, stamped(body, now_us_str()))
redis.call('LPUSH', pending[level], id)
wake(k, tonumber(ARGV[4]))
return 1
