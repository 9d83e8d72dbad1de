-- unwatch_end(id): ARGV = levels, id. One waiter fewer; the entry goes with the last one.
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua).
-- (The end of the task removes the entry itself, so a missing entry is not an error.)
if redis.call('HEXISTS', k.waiting, ARGV[2]) == 0 then return 0 end
if redis.call('HINCRBY', k.waiting, ARGV[2], -1) <= 0 then
  redis.call('HDEL', k.waiting, ARGV[2])
end
return 1
