-- delete_many: delete the given jobs unless they run, with their attempt records.
-- ARGV: status ('' = any: the state each job must still be in, re-checked here because
--   the ids were listed by an earlier call), id...
-- Returns the number skipped because they were processing, then the ids deleted.
-- Ids that are gone or changed state since they were listed are neither.

local status = ARGV[1]
local out = {0}
for i = 2, #ARGV do
  local id = ARGV[i]
  local f = redis.call('HMGET', B .. 'j:' .. id, 'state', 'queue', 'priority', 'key')
  if f[1] and (status == '' or f[1] == status) then
    if f[1] == 'processing' then
      out[1] = out[1] + 1
    else
      delete_job(id, f)
      out[#out + 1] = id
    end
  end
end
flush()
return out
