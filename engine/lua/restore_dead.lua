-- restore_dead(token): ARGV = levels, undo token, limit.
-- KEYS: the queue's fixed keys, its pending lists, highest level first (common.lua), then the
-- holding keys (held.lua).
-- Up to `limit` letters held under the token go back to the dead set as they were (died-at
-- time, payload, error record, enqueue stamp). A letter whose id is in use again (enqueued
-- anew since) stays deleted. Expired letters are pruned first, so an expired token finds none.
-- Returns {restored, id in use, still held under the token}.
local now = now_ms()
prune_held(now, 1000)
local first, last = '[' .. ARGV[2] .. '|', '(' .. ARGV[2] .. '}'
local members = redis.call('ZRANGEBYLEX', held, first, last, 'LIMIT', 0, tonumber(ARGV[3]))
local restored, taken = 0, 0
local prefix = #ARGV[2] + 2
for _, member in ipairs(members) do
  local raw = redis.call('HGET', held_rec, member)
  local id = string.sub(member, prefix)
  if raw and redis.call('HEXISTS', k.tasks, id) == 0 and not redis.call('ZSCORE', k.dead, id) then
    local r = cjson.decode(raw)
    if r.p then redis.call('HSET', k.tasks, id, r.p) end
    if r.i then redis.call('HSET', k.dead_info, id, r.i) end
    if r.e then redis.call('HSET', k.ea, id, r.e) end
    redis.call('ZADD', k.dead, r.d, id)
    restored = restored + 1
  else
    taken = taken + 1
  end
  redis.call('ZREM', held, member)
  redis.call('HDEL', held_rec, member)
end
return {restored, taken, redis.call('ZLEXCOUNT', held, first, last)}
