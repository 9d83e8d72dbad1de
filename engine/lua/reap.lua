-- reap: ARGV = levels, limit, crash_limit, dead_max, dead_max_age_ms, promote_limit, wake_cap,
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   the holding keys (held.lua); then the queue's flow keys (flow.lua).
-- result_ttl_ms.
-- Expired leases go back to pending (each expiry counts as an attempt) or to the dead-letter
-- set, or end as cancelled when a cancel was requested; due scheduled tasks are promoted;
-- orphans in `active` are dropped; DLQ caps enforced; cancelled records older than the result
-- TTL are dropped; deleted letters whose restore window ended are dropped.
-- Returns {requeued, dead, promoted, orphans, evicted, crash_looped}.
local now = now_ms()
local limit = tonumber(ARGV[2])
local crash_limit = tonumber(ARGV[3])
local requeued, dead, orphans, looped = 0, 0, 0, 0
local expired = redis.call('ZRANGEBYSCORE', k.active, '-inf', now - 1, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local p = redis.call('HGET', k.tasks, id)
  flow_release(id)
  if not p then
    redis.call('ZREM', k.active, id)
    forget(k, {id})
    orphans = orphans + 1
  elseif redis.call('HEXISTS', k.cancel, id) == 1 then
    unique_done(id)
    finish_cancelled(id, p, now)
  else
    local c = redis.call('HINCRBY', k.crash, id, 1)
    -- This delivery ended without success: count it (fetch does not write `att`).
    local a = tonumber(redis.call('HGET', k.att, id) or '0') + 1
    redis.call('HSET', k.att, id, a)
    local token = redis.call('HGET', k.lease, id) or ''
    local worker = string.match(token, '|(.*)$') or ''
    local err = 'lease expired (worker lost)'
    if c >= crash_limit or a > payload_max_retries(p) then
      local reason = 'lease_expired'
      if c >= crash_limit then
        reason = 'crash_loop'
        err = 'crash_loop: lease expired ' .. c .. ' times (worker lost mid-task); last worker ' .. worker
        looped = looped + 1
      end
      bury(k, id, cjson.encode({
        error = err, exc_type = 'LeaseExpired', traceback = '', reason = reason,
        worker = worker, attempts = a, crashes = c, died_at_ms = now, name = payload_name(p),
      }), now)
      unique_done(id)
      dead = dead + 1
    else
      redis.call('ZREM', k.active, id)
      redis.call('HDEL', k.lease, id)
      redis.call('HSET', k.lasterr, id, cjson.encode({
        error = err, exc_type = 'LeaseExpired', worker = worker, at_ms = now,
      }))
      redis.call('LPUSH', pending[payload_level(p)] or pending['__default'], id)
      redis.call('HSET', k.ready, id, now_us_str())
      requeued = requeued + 1
    end
  end
end
local promoted = promote_due(k, pending, now, tonumber(ARGV[6]))
promoted = promoted + flow_sweep(200)
unique_expire(now, 1000)
local evicted = trim_dead(k, now, tonumber(ARGV[4]), tonumber(ARGV[5]))
local old = redis.call('ZRANGEBYSCORE', k.cancelled_at, '-inf', now - tonumber(ARGV[8]), 'LIMIT', 0, 1000)
if #old > 0 then
  redis.call('ZREM', k.cancelled_at, unpack(old))
  redis.call('HDEL', k.cancelled, unpack(old))
end
prune_held(now, 1000)
if requeued + promoted > 0 then wake(k, tonumber(ARGV[7])) end
return {requeued, dead, promoted, orphans, evicted, looped}
