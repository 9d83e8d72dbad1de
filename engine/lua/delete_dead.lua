-- delete_dead(ids): ARGV = levels, ids... Removes dead tasks for good. Returns the count.
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua).
local count = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', k.dead, id) == 1 then
    forget(k, {id})
    count = count + 1
  end
end
return count
