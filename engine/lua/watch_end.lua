-- watch_end(id): ARGV = levels, id. Registers one more waiter for the end of task `id` and
-- KEYS: the queue's fixed keys, then its pending lists, highest level first (common.lua).
-- returns the `ended` stream's last entry id ('0-0' when empty): the waiter reads from there.
redis.call('HINCRBY', k.waiting, ARGV[2], 1)
local last = redis.call('XREVRANGE', k.ended, '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]
