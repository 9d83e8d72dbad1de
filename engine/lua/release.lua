-- release(leases): ARGV = levels, wake_cap, then pairs of id, token. Tasks a stopping worker
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   the queue's flow keys (flow.lua).
-- holds but did not finish go back to the front of their level (next out), their delivery
-- not counted as an attempt (`att` only counts deliveries that ended without success, so
-- there is nothing to undo). Returns how many were released.
local count = 0
local unparked = 0
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', k.lease, id) == token and redis.call('ZREM', k.active, id) == 1 then
    redis.call('HDEL', k.lease, id)
    unparked = unparked + flow_release(id)
    local p = redis.call('HGET', k.tasks, id)
    if p then
      redis.call('RPUSH', pending[payload_level(p)] or pending['__default'], id)
      count = count + 1
    end
  end
end
if count + unparked > 0 then wake(k, tonumber(ARGV[2])) end
return count
