-- list: jobs by status and/or queue within a created_at range, optionally of one task,
-- of one flow-control group and/or whose error contains a text.
-- ARGV: mode ('page' | 'ids'), status ('' = any), queue ('' = any), min, max
--   (ZRANGEBYSCORE bounds on created_at), offset, limit, task ('' = any),
--   error text ('' = any; plain text, case-sensitive: string.find with plain = true,
--   so pattern characters are just characters, as the kit says), group ('' = any).
-- page: total, then id, {flat HGETALL} per job, newest first (created_at desc, id desc).
-- ids: id, created_at pairs of every match (unordered).
-- The index: sq:<queue>:<status>, merged over queues and/or states when
-- either is not given (a page reads at most offset + limit entries of each
-- set). A task, group or error filter has no index: it reads the jobs of the range.

local mode, status, queue, lo, hi = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local offset, limit, task, err = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9] or ''
local group = ARGV[10] or ''
local filtered = task ~= '' or err ~= '' or group ~= ''
local CHUNK = 1000

local STATES = {'pending', 'processing', 'retry', 'completed', 'failed', 'cancelled'}
local queues = queue ~= '' and {queue} or redis.call('SMEMBERS', B .. 'queues')
local states = status ~= '' and {status} or STATES
local keys = {}
for _, q in ipairs(queues) do
  for _, s in ipairs(states) do
    keys[#keys + 1] = B .. 'sq:' .. q .. ':' .. s
  end
end

local function newest_first(a, b)
  if a[2] ~= b[2] then
    return a[2] > b[2]
  end
  return a[1] > b[1]
end

-- Does job `id` pass the task, group and error filters?
local function wanted(id)
  if not filtered then
    return true
  end
  local f = redis.call('HMGET', B .. 'j:' .. id, 'task', 'error', 'group_key')
  if task ~= '' and f[1] ~= task then
    return false
  end
  if group ~= '' and f[3] ~= group then
    return false
  end
  return err == '' or (f[2] and string.find(f[2], err, 1, true) ~= nil) or false
end

-- Every (id, created_at) of the range passing the filters, from every index.
local function matches()
  local found = {}
  for _, key in ipairs(keys) do
    local start = 0
    while true do
      local r = redis.call('ZRANGEBYSCORE', key, lo, hi, 'WITHSCORES', 'LIMIT', start, CHUNK)
      for j = 1, #r, 2 do
        if wanted(r[j]) then
          found[#found + 1] = {r[j], tonumber(r[j + 1])}
        end
      end
      if #r < 2 * CHUNK then
        break
      end
      start = start + CHUNK
    end
  end
  return found
end

if mode == 'ids' then
  local out = {}
  for _, m in ipairs(matches()) do
    out[#out + 1] = m[1]
    out[#out + 1] = fmt(m[2])
  end
  return out
end

local ids, total = {}, 0
if not filtered and #keys == 1 then
  total = redis.call('ZCOUNT', keys[1], lo, hi)
  if limit > 0 then
    ids = redis.call('ZREVRANGEBYSCORE', keys[1], hi, lo, 'LIMIT', offset, limit)
  end
else
  local found
  if not filtered then
    -- Merge the heads: no page reaches past offset + limit of any one index.
    found = {}
    for _, key in ipairs(keys) do
      total = total + redis.call('ZCOUNT', key, lo, hi)
      if limit > 0 then
        local r = redis.call('ZREVRANGEBYSCORE', key, hi, lo, 'WITHSCORES', 'LIMIT', 0, offset + limit)
        for j = 1, #r, 2 do
          found[#found + 1] = {r[j], tonumber(r[j + 1])}
        end
      end
    end
  else
    found = matches()
    total = #found
  end
  table.sort(found, newest_first)
  for i = offset + 1, math.min(#found, offset + limit) do
    ids[#ids + 1] = found[i][1]
  end
end
local out = {total}
for _, id in ipairs(ids) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGETALL', B .. 'j:' .. id)
end
return out
