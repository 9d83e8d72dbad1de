-- fleet_heartbeat: KEYS[1] the workers hash (one field per worker process, its JSON record),
-- KEYS[2] the seen index (zset: worker id -> last heartbeat, ms; same Cluster slot).
-- ARGV: worker id, its record, cutoff (epoch seconds: a record last seen before it is stale),
-- keep_ms (the keys' lifetime after this heartbeat), this record's last seen (epoch ms).
-- Writes this worker's record and drops every stale one (a SIGKILLed process leaves its record
-- behind); readers only filter, so listing the fleet never writes. The index finds the stale
-- in O(log N) instead of decoding every record on every heartbeat (O(N) each, O(N^2) for the
-- fleet). Records the index does not know (written before it existed, or unreadable) are
-- found by a full pass, run only while the hash holds more fields than the index. Both keys
-- expire keep_ms after the last heartbeat, so records go even when no worker is left to prune.
-- Runs without the queue set-up of common.lua (this is not a queue's function). Returns the
-- number of records dropped.
local workers, seen = KEYS[1], KEYS[2]
local cutoff_ms = math.floor(tonumber(ARGV[3]) * 1000)
redis.call('HSET', workers, ARGV[1], ARGV[2])
redis.call('ZADD', seen, tonumber(ARGV[5]), ARGV[1])
local dropped = 0
-- At most 1,000 a heartbeat (unpack's limit is a few thousand); the next ones take the rest.
local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. cutoff_ms, 'LIMIT', 0, 1000)
if #stale > 0 then
  dropped = redis.call('HDEL', workers, unpack(stale))
  redis.call('ZREM', seen, unpack(stale))
end
if redis.call('HLEN', workers) > redis.call('ZCARD', seen) then
  local all = redis.call('HGETALL', workers)
  for i = 1, #all, 2 do
    local ok, doc = pcall(cjson.decode, all[i + 1])
    local last = ok and type(doc) == 'table' and tonumber(doc['last_seen_s'])
    if not last or last * 1000 < cutoff_ms then
      redis.call('HDEL', workers, all[i])
      redis.call('ZREM', seen, all[i])
      dropped = dropped + 1
    else
      redis.call('ZADD', seen, math.floor(last * 1000), all[i])
    end
  end
end
redis.call('PEXPIRE', workers, ARGV[4])
redis.call('PEXPIRE', seen, ARGV[4])
return dropped
