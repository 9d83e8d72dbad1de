-- cancel(id): ARGV = levels, id. Returns {code, lease token}:
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   the queue's flow keys (flow.lua).
--   1 cancelled now: it was pending, scheduled, retrying or parked by flow control;
--   2 running: the request is recorded in `cancel`, and the worker named in the token must
--     stop it (its settle, or the reaper, then ends it as cancelled);
--   0 nothing done: unknown, already ended, or already requested.
local id = ARGV[2]
local now = now_ms()
local p = redis.call('HGET', k.tasks, id)
if not p or redis.call('ZSCORE', k.dead, id) then return {0, ''} end
if redis.call('ZSCORE', k.active, id) then
  if redis.call('HSETNX', k.cancel, id, now) == 0 then return {0, ''} end
  return {2, redis.call('HGET', k.lease, id) or ''}
end
if redis.call('ZREM', k.scheduled, id) == 0 then
  local member = redis.call('HGET', fk.wait, id)
  if member then
    redis.call('ZREM', fk.parked, member)
    redis.call('HDEL', fk.wait, id)
  elseif redis.call('LREM', pending[payload_level(p)] or pending['__default'], 1, id) == 0 then
    for i = 1, NLEVELS do
      if redis.call('LREM', pending[levels[i]], 1, id) > 0 then break end
    end
  end
end
redis.call('HDEL', fk.rated, id)
unique_done(id)
finish_cancelled(id, p, now)
return {1, ''}
