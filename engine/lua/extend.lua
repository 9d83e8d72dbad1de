-- extend(leases): ARGV = levels, lease_ms, then pairs of id, token.
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua).
-- Renews only live leases still held by the caller: an expired or reclaimed lease is never
-- resurrected. Returns one flag per id: 1 renewed, 2 renewed but a cancel was requested (the
-- worker must stop it: a backstop for a lost pub/sub message), 0 lost.
local now = now_ms()
local deadline = now + tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local score = redis.call('ZSCORE', k.active, id)
  if score and tonumber(score) >= now and redis.call('HGET', k.lease, id) == token then
    redis.call('ZADD', k.active, 'XX', deadline, id)
    if redis.call('HEXISTS', k.cancel, id) == 1 then out[#out + 1] = 2 else out[#out + 1] = 1 end
  else
    out[#out + 1] = 0
  end
end
return out
