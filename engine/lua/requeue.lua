-- requeue(ids): ARGV = levels, wake_cap, ids... Dead tasks go back to the tail of their
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua).
-- level's pending list with attempts reset. Returns how many were requeued.
local count = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', k.dead, id) == 1 then
    local p = redis.call('HGET', k.tasks, id)
    redis.call('HDEL', k.dead_info, id)
    if p then
      redis.call('HDEL', k.att, id)
      redis.call('HDEL', k.crash, id)
      redis.call('HDEL', k.lasterr, id)
      redis.call('LPUSH', pending[payload_level(p)] or pending['__default'], id)
      redis.call('HSET', k.ready, id, now_us_str())
      count = count + 1
    else
      forget(k, {id})
    end
  end
end
if count > 0 then wake(k, tonumber(ARGV[2])) end
return count
