-- actions_list: recorded actions, newest first, all or those naming one job.
-- ARGV: job_id ('' = all), offset, limit.
-- Returns, per action: id, at, actor, role, action, job_id, count, detail.

local job, offset, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {}
if limit <= 0 then
  return out
end
local ids
if job == '' then
  ids = redis.call('ZREVRANGE', B .. 'xs', offset, offset + limit - 1)
else
  -- xj:<job> is oldest first: walk it from the end.
  ids = redis.call('LRANGE', B .. 'xj:' .. job, -(offset + limit), -(offset + 1))
  local reversed = {}
  for k = #ids, 1, -1 do
    reversed[#reversed + 1] = ids[k]
  end
  ids = reversed
end
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', B .. 'x:' .. id, 'at', 'actor', 'role', 'action', 'job_id', 'count', 'detail')
  if f[1] then
    out[#out + 1] = id
    for k = 1, 7 do
      out[#out + 1] = f[k]
    end
  end
end
return out
