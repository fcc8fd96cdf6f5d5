-- actions_record: store operators' actions at the server's now (TIME).
-- ARGV, per action: actor, role ('' = none), action, job_id ('' = none), count,
--   detail ('' = none), n, then n job ids it links to.
-- x:<id> is the action (a hash), xs the ids by id (newest-first listings), xj:<job>
-- the ids of the actions naming a job, oldest first. Actions outlive their jobs.

local _, now_s = clock()
local i = 1
while i <= #ARGV do
  local id = redis.call('INCR', B .. 'x:seq')
  redis.call('HSET', B .. 'x:' .. id, 'at', now_s, 'actor', ARGV[i], 'role', ARGV[i + 1],
    'action', ARGV[i + 2], 'job_id', ARGV[i + 3], 'count', ARGV[i + 4], 'detail', ARGV[i + 5])
  redis.call('ZADD', B .. 'xs', id, id)
  local n = tonumber(ARGV[i + 6])
  for j = i + 7, i + 6 + n do
    redis.call('RPUSH', B .. 'xj:' .. ARGV[j], id)
  end
  i = i + 7 + n
end
return #ARGV
