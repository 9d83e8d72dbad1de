-- Flow control shared by fetch, settle, reap, release, repair, enqueue_unique and cancel; in
-- the function library after common.lua (engine/scripts.py). The flow keys come LAST in KEYS
-- (scripts.py appends them after any per-task keys), so functions that take a variable number
-- of keys still find them. Those functions call `flow_setup` after `setup`.
local NFLOW = 10
local fk
-- Per call: limit specs read (below), and within one fetch, slot counts and rate clocks read
-- once and written once by `flow_commit` (per-task redis.call() overhead was most of the
-- cost of a limit). fc_any_rated: does any task hold a rate reservation (read on first need).
local flow_specs, fc_count, fc_delta, fc_held, fc_tat, fc_any_rated
local flow_for = nil
local function flow_setup(KEYS)
  flow_specs, fc_count, fc_delta, fc_held, fc_tat, fc_any_rated = {}, {}, {}, {}, {}, nil
  -- The flow keys' names follow from the queue's (KEYS[1]), whatever their position.
  if KEYS[1] == flow_for then return end
  local FB = #KEYS - NFLOW
  fk = {
    limits = KEYS[FB + 1], count = KEYS[FB + 2], held = KEYS[FB + 3], tat = KEYS[FB + 4],
    rated = KEYS[FB + 5], parked = KEYS[FB + 6], wait = KEYS[FB + 7], unique = KEYS[FB + 8],
    unique_exp = KEYS[FB + 9], unique_of = KEYS[FB + 10],
  }
  flow_for = KEYS[1]
end

-- Limit specs (written by workers from their @task declarations), read once per call.
-- Fields: iv ms between rate tokens, tau ms of burst tolerance, c concurrency per name,
-- kc concurrency per key, kp/ka position/name of the key argument, kd its default.
local function flow_spec(name)
  local s = flow_specs[name]
  if s == nil then
    local raw = redis.call('HGET', fk.limits, name)
    s = raw and cjson.decode(raw) or false
    flow_specs[name] = s
  end
  return s
end

-- The concurrency slots a task needs: {slot key, limit}. A key slot names the argument's JSON
-- value, which never holds a raw newline (parked members are newline separated).
local function flow_slots(spec, name, p)
  local slots = {}
  if (spec.c or 0) > 0 then slots[#slots + 1] = {'n\t' .. name, spec.c} end
  if (spec.kc or 0) > 0 then
    local ok, doc = pcall(cjson.decode, p)
    local v = nil
    if ok and type(doc) == 'table' then
      if (spec.kp or -1) >= 0 and type(doc.a) == 'table' then v = doc.a[spec.kp + 1] end
      if v == nil and spec.ka and type(doc.k) == 'table' then v = doc.k[spec.ka] end
    end
    if v == nil then v = spec.kd end
    local encoded = 'null'
    if v ~= nil then encoded = cjson.encode(v) end
    slots[#slots + 1] = {'k\t' .. name .. '\t' .. encoded, spec.kc}
  end
  return slots
end

local function slot_limit(slot)
  local kind, name = string.match(slot, '^(.)\t([^\t]*)')
  local spec = name and flow_spec(name)
  if not spec then return nil end
  if kind == 'n' then return spec.c end
  return spec.kc
end

-- Let up to n tasks parked on `slot` back to the FRONT of their level (next out).
local function flow_unpark(slot, n)
  local members = redis.call('ZRANGEBYLEX', fk.parked, '[' .. slot .. '\n', '(' .. slot .. '\v',
    'LIMIT', 0, n)
  for _, m in ipairs(members) do
    redis.call('ZREM', fk.parked, m)
    local id = string.match(m, '\n[^\n]*\n(.*)$')
    redis.call('HDEL', fk.wait, id)
    local p = redis.call('HGET', k.tasks, id)
    if p then redis.call('RPUSH', pending[payload_level(p)] or pending['__default'], id) end
  end
  return #members
end

-- Tasks stop running (settled, reaped, released, cancelled): give back their concurrency
-- slots, each freed slot letting one parked task through. One read and one write per slot
-- for the whole batch. Returns how many tasks were let through.
local function flow_release_many(ids)
  if #ids == 0 then return 0 end
  local helds = bulk_read('HMGET', fk.held, ids)
  local had = {}
  local freed = {}
  for i, h in ipairs(helds) do
    if h then
      had[#had + 1] = ids[i]
      for slot in string.gmatch(h, '[^\n]+') do freed[slot] = (freed[slot] or 0) + 1 end
    end
  end
  if #had == 0 then return 0 end
  bulk('HDEL', fk.held, had)
  local any_parked = redis.call('EXISTS', fk.parked) == 1
  local unparked = 0
  for slot, d in pairs(freed) do
    if redis.call('HINCRBY', fk.count, slot, -d) <= 0 then redis.call('HDEL', fk.count, slot) end
    if any_parked then unparked = unparked + flow_unpark(slot, d) end
  end
  return unparked
end

local function flow_release(id)
  return flow_release_many({id})
end

-- A task ended for good (succeeded, dead, cancelled): drop its `unique_until="done"` lock.
local function unique_done(id)
  local digest = redis.call('HGET', fk.unique_of, id)
  if not digest then return end
  redis.call('HDEL', fk.unique_of, id)
  if redis.call('HGET', fk.unique, digest) == id then
    redis.call('HDEL', fk.unique, digest)
    redis.call('ZREM', fk.unique_exp, digest)
  end
end

-- Spend the rate reservation `id` holds, if any: true when it had one.
local function spend_reservation(id)
  if fc_any_rated == nil then fc_any_rated = redis.call('EXISTS', fk.rated) == 1 end
  return fc_any_rated and redis.call('HDEL', fk.rated, id) == 1
end

local function slot_count(slot)
  local c = fc_count[slot]
  if c == nil then
    c = tonumber(redis.call('HGET', fk.count, slot) or '0')
    fc_count[slot] = c
  end
  return c
end

-- May a fetched task run now? Returns nil when it may (its slots are then taken); otherwise
-- the task has been handed back and the reason is returned: 'c' parked until a concurrency
-- slot frees, 'r' scheduled at the rate slot reserved for it (so it waits without spinning
-- and without using an attempt). Call `flow_commit` before the script ends.
local function flow_admit(id, p, now)
  local name = payload_name(p)
  local spec = flow_spec(name)
  if not spec then return nil end
  local slots = flow_slots(spec, name, p)
  for _, s in ipairs(slots) do
    if slot_count(s[1]) >= s[2] then
      local seq = redis.call('HINCRBY', k.meta, 'parkseq', 1)
      local member = s[1] .. '\n' .. string.format('%015d', seq) .. '\n' .. id
      redis.call('ZADD', fk.parked, 0, member)
      redis.call('HSET', fk.wait, id, member)
      redis.call('HINCRBY', k.meta, 'throttled_conc', 1)
      return 'c'
    end
  end
  if (spec.iv or 0) > 0 and not spend_reservation(id) then
    -- GCRA: `tat` is when the next token is due; every admitted or reserved task moves it on.
    local tat = fc_tat[name] or tonumber(redis.call('HGET', fk.tat, name) or '0')
    local base = math.max(tat, now)
    local at = base - (spec.tau or 0)
    fc_tat[name] = base + spec.iv
    -- The clock has ms steps: a slot due within the current ms is due now (above 1,000/s,
    -- strict spacing would hand back every task but the first of each ms).
    if at >= now + 1 then
      at = math.ceil(at)
      redis.call('ZADD', k.scheduled, at, id)
      redis.call('HSET', fk.rated, id, at)
      redis.call('HINCRBY', k.meta, 'throttled_rate', 1)
      return 'r'
    end
  end
  if #slots > 0 then
    local names = {}
    for i, s in ipairs(slots) do
      fc_count[s[1]] = fc_count[s[1]] + 1
      fc_delta[s[1]] = (fc_delta[s[1]] or 0) + 1
      names[i] = s[1]
    end
    fc_held[#fc_held + 1] = id
    fc_held[#fc_held + 1] = table.concat(names, '\n')
  end
  return nil
end

-- Write what `flow_admit` decided: slot counts, who holds which slots, rate clocks.
local function flow_commit()
  for slot, d in pairs(fc_delta) do redis.call('HINCRBY', fk.count, slot, d) end
  if #fc_held > 0 then bulk('HSET', fk.held, fc_held) end
  for name, t in pairs(fc_tat) do redis.call('HSET', fk.tat, name, tostring(t)) end
end

-- Reaper safety net: parked tasks whose slot has room (a limit was raised or removed) go back.
local function flow_sweep(limit)
  local members = redis.call('ZRANGE', fk.parked, 0, limit - 1)
  local room = {}
  local moved = 0
  for _, m in ipairs(members) do
    local slot = string.match(m, '^([^\n]*)\n')
    if room[slot] == nil then
      local lim = slot_limit(slot)
      if lim == nil then
        room[slot] = limit
      else
        room[slot] = lim - tonumber(redis.call('HGET', fk.count, slot) or '0')
      end
    end
    if room[slot] > 0 then
      room[slot] = room[slot] - 1
      moved = moved + flow_unpark(slot, 1)
    end
  end
  return moved
end

-- Reaper: unique locks past their window are dropped.
local function unique_expire(now, limit)
  local digests = redis.call('ZRANGEBYSCORE', fk.unique_exp, '-inf', now, 'LIMIT', 0, limit)
  for _, d in ipairs(digests) do
    local id = redis.call('HGET', fk.unique, d)
    redis.call('HDEL', fk.unique, d)
    redis.call('ZREM', fk.unique_exp, d)
    if id and redis.call('HGET', fk.unique_of, id) == d then redis.call('HDEL', fk.unique_of, id) end
  end
  return #digests
end
