-- set_paused: ARGV = levels, paused ("1" pause, "0" resume), wake_cap. KEYS: the fixed queue keys
-- (common.lua). Pausing stops fetches handing out the queue's tasks (running ones finish,
-- enqueues still land); resuming wakes idle workers. Returns 1 if the state changed, else 0.
local was = redis.call('EXISTS', k.paused)
if ARGV[2] == '1' then
  redis.call('SET', k.paused, '1')
  redis.call('HSETNX', k.meta, 'registered', '1')
  return 1 - was
end
redis.call('DEL', k.paused)
wake(k, tonumber(ARGV[3]))
return was
