-- list: jobs in one index (KEYS[2], a sorted set scored by created_at) within
-- a created_at range, optionally of one task.
-- ARGV: mode ('page' | 'ids'), min, max (ZRANGEBYSCORE bounds), offset, limit, task ('' = any).
-- page: total, then {flat HGETALL} per job, newest first (created_at desc, id desc).
-- ids: id, created_at pairs of every match, oldest first.
-- A task filter has no index of its own: it reads the jobs of the range (documented).

local index, mode, lo, hi = KEYS[2], ARGV[1], ARGV[2], ARGV[3]
local offset, limit, task = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local CHUNK = 1000

if mode == 'ids' then
  local out = {}
  local start = 0
  while true do
    local r = redis.call('ZRANGEBYSCORE', index, lo, hi, 'WITHSCORES', 'LIMIT', start, CHUNK)
    for j = 1, #r, 2 do
      if task == '' or redis.call('HGET', B .. 'j:' .. r[j], 'task') == task then
        out[#out + 1] = r[j]
        out[#out + 1] = r[j + 1]
      end
    end
    if #r < 2 * CHUNK then
      return out
    end
    start = start + CHUNK
  end
end

local ids, total
if task == '' then
  total = redis.call('ZCOUNT', index, lo, hi)
  if limit > 0 then
    ids = redis.call('ZREVRANGEBYSCORE', index, hi, lo, 'LIMIT', offset, limit)
  else
    ids = {}
  end
else
  ids, total = {}, 0
  local start = 0
  while true do
    local r = redis.call('ZREVRANGEBYSCORE', index, hi, lo, 'LIMIT', start, CHUNK)
    for _, id in ipairs(r) do
      if redis.call('HGET', B .. 'j:' .. id, 'task') == task then
        if total >= offset and #ids < limit then
          ids[#ids + 1] = id
        end
        total = total + 1
      end
    end
    if #r < CHUNK then
      break
    end
    start = start + CHUNK
  end
end
local out = {total}
for _, id in ipairs(ids) do
  out[#out + 1] = redis.call('HGETALL', B .. 'j:' .. id)
end
return out
