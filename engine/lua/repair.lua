-- repair(candidates): ARGV = levels, wake_cap, ids... A task whose payload exists but which
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   the queue's flow keys (flow.lua).
-- is in no pending list, no sorted set and has no result is put back on its pending list.
-- The caller finds candidates cheaply; this script re-checks each atomically.
local fixed = 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local p = redis.call('HGET', k.tasks, id)
  if p and not redis.call('ZSCORE', k.active, id) and not redis.call('ZSCORE', k.scheduled, id)
      and not redis.call('ZSCORE', k.dead, id) and redis.call('HEXISTS', fk.wait, id) == 0 then
    local key = pending[payload_level(p)] or pending['__default']
    if not redis.call('LPOS', key, id) then
      redis.call('LPUSH', key, id)
      fixed = fixed + 1
    end
  end
end
if fixed > 0 then wake(k, tonumber(ARGV[2])) end
return fixed
