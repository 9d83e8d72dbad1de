-- enqueue(batch): ARGV = levels, wake_cap, then one item per task:
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua); then
--   the result key of each item whose id the caller chose (see below).
--   check .. level .. "\n" .. delay_ms .. "\n" .. id .. "\n" .. payload
-- (one argument per task keeps the client's command packing cheap; JSON has no raw newline).
-- The payload is stored with the server's enqueue time appended as its field "e" (common.lua's
-- `stamped`).
-- check is '?' for an id the caller chose: it is checked (an id already stored, or whose
-- result still exists, is the same task) against the next extra KEY, its result key. It is
-- '-' for an id the broker generated (128 random bits, never seen before): no check, no key.
-- Writes go out as one command per hash/list for the whole batch, not per task: in Redis the
-- per-call cost of redis.call() was most of the enqueue cost.
-- Returns 1 when the queue's meta had no `registered` mark (the server lost the queue's
-- registration, e.g. a restart without persistence), so the caller must add it to the global
-- queue set again; else 0. (An id already known is left as it is: idempotent by id. Nobody
-- read the flag per task it used to return, which cost the server a reply value per task.)
local now = now_ms()
local now_us = now_us_str()
local wake_cap = tonumber(ARGV[2])
local fields, delayed, by_level, seen = {}, {}, {}, {}
local extra = FIRST_EXTRA_KEY
local pushed = 0
for i = 3, #ARGV do
  local check, level, delay, id, body =
    string.match(ARGV[i], '^(.)([^\n]*)\n([^\n]*)\n([^\n]*)\n(.*)}$')
  -- Checked before the first write: a bad item fails the call with nothing stored.
  if not check or not pending[level] or not tonumber(delay) then
    return redis.error_reply('ERR enqueue: malformed item ' .. (i - 2))
  end
  local fresh = true
  if check == '?' then
    fresh = not seen[id] and redis.call('HEXISTS', k.tasks, id) == 0
      and redis.call('EXISTS', KEYS[extra]) == 0
    seen[id] = true
    extra = extra + 1
  end
  if fresh then
    fields[#fields + 1] = id
    fields[#fields + 1] = stamped(body, now_us)
    delay = tonumber(delay)
    if delay > 0 then
      delayed[#delayed + 1] = now + delay
      delayed[#delayed + 1] = id
    else
      local ids = by_level[level]
      if not ids then
        ids = {}
        by_level[level] = ids
      end
      ids[#ids + 1] = id
      pushed = pushed + 1
    end
  end
end
bulk('HSET', k.tasks, fields)
bulk('ZADD', k.scheduled, delayed)
for level, ids in pairs(by_level) do bulk('LPUSH', pending[level], ids) end
if pushed > 0 then wake(k, wake_cap) end
return redis.call('HSETNX', k.meta, 'registered', '1')
