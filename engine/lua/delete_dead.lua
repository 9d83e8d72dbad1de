-- delete_dead(ids): ARGV = levels, undo token ('' = for good), held max, ids...
-- KEYS: the queue's fixed keys, its pending lists, highest level first (common.lua), then the
-- holding keys (held.lua).
-- Removes dead letters from the dead set. With a token each is held, restorable with that
-- token until it expires: its died-at time, payload, record and enqueue stamp, as they were.
-- Returns the count.
local token = ARGV[2]
local count = 0
if token ~= '' then prune_held(now_ms(), 1000) end
for i = 4, #ARGV do
  local id = ARGV[i]
  local died = redis.call('ZSCORE', k.dead, id)
  if died then
    redis.call('ZREM', k.dead, id)
    if token ~= '' then
      local member = token .. '|' .. id
      redis.call('HSET', held_rec, member, cjson.encode({
        d = died, p = redis.call('HGET', k.tasks, id), i = redis.call('HGET', k.dead_info, id),
        e = redis.call('HGET', k.ea, id),
      }))
      redis.call('ZADD', held, 0, member)
    end
    forget(k, {id})
    count = count + 1
  end
end
if token ~= '' then trim_held(tonumber(ARGV[3])) end
return count
