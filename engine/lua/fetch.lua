-- fetch(n): ARGV = levels, n, lease_ms, token, promote_limit, wake_cap.
-- Pops up to n ids, highest level first, FIFO within a level, into `active` under a lease.
-- Returns {now_ms, next_due_ms or -1, now_us, then per task: id, payload, attempts,
-- enqueued_at_us, ready_at_us or '' (when a delayed/retried/reaped task became runnable)}.
local now = now_ms()
local now_us = now_us_str()
local n = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local token = ARGV[4]
promote_due(k, pending, now, tonumber(ARGV[5]))
local out = {now, -1, now_us}
local nxt = redis.call('ZRANGE', k.scheduled, 0, 0, 'WITHSCORES')
if #nxt > 0 then out[2] = tonumber(nxt[2]) end
if redis.call('EXISTS', k.paused) == 1 then return out end
local ids = {}
for i = 1, NLEVELS do
  local popped = redis.call('RPOP', pending[levels[i]], n - #ids)
  if popped then
    for _, id in ipairs(popped) do ids[#ids + 1] = id end
  end
  if #ids >= n then break end
end
local more = false
if #ids >= n then
  for i = 1, NLEVELS do
    if redis.call('LLEN', pending[levels[i]]) > 0 then more = true break end
  end
end
if #ids == 0 then return out end
local payloads = redis.call('HMGET', k.tasks, unpack(ids))
local eas = redis.call('HMGET', k.ea, unpack(ids))
local readies = redis.call('HMGET', k.ready, unpack(ids))
local deadline = now + lease_ms
local zargs = {}
local largs = {}
for i, id in ipairs(ids) do
  local p = payloads[i]
  if p then
    local a = redis.call('HINCRBY', k.att, id, 1)
    zargs[#zargs + 1] = deadline
    zargs[#zargs + 1] = id
    largs[#largs + 1] = id
    largs[#largs + 1] = token
    out[#out + 1] = id
    out[#out + 1] = p
    out[#out + 1] = a
    out[#out + 1] = eas[i] or now_us
    out[#out + 1] = readies[i] or ''
  end
end
if #zargs > 0 then
  redis.call('ZADD', k.active, unpack(zargs))
  redis.call('HSET', k.lease, unpack(largs))
end
-- Chain wake-ups: work remains, so let another idle fetcher (maybe on another host) in.
if more then wake(k, tonumber(ARGV[6])) end
return out
