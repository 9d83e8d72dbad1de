-- fleet_heartbeat: KEYS[1] the workers hash (one field per worker process, its JSON record).
-- ARGV: worker id, its record, cutoff (epoch seconds: a record last seen before it is stale),
-- keep_ms (the hash's lifetime after this heartbeat).
-- Writes this worker's record and drops every stale or unreadable one (a SIGKILLed process
-- leaves its record behind); readers only filter, so listing the fleet never writes. The hash
-- expires keep_ms after the last heartbeat, so records go even when no worker is left to prune.
-- Runs without the queue set-up of common.lua (this is not a queue's function). Returns the number
-- of records dropped.
local workers = KEYS[1]
redis.call('HSET', workers, ARGV[1], ARGV[2])
local cutoff = tonumber(ARGV[3])
local all = redis.call('HGETALL', workers)
local dropped = 0
for i = 1, #all, 2 do
  local ok, doc = pcall(cjson.decode, all[i + 1])
  local seen = ok and type(doc) == 'table' and tonumber(doc['last_seen_s'])
  if not seen or seen < cutoff then
    redis.call('HDEL', workers, all[i])
    dropped = dropped + 1
  end
end
redis.call('PEXPIRE', workers, ARGV[4])
return dropped
