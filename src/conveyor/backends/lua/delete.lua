-- delete: remove a job that is not processing, with its attempt records.
-- ARGV: id. Returns 'deleted', 'missing' or 'processing'.

local id = ARGV[1]
local f = redis.call('HMGET', B .. 'j:' .. id, 'state', 'queue', 'priority', 'key')
if not f[1] then
  return 'missing'
end
if f[1] == 'processing' then
  return 'processing'
end
delete_job(id, f)
flush()
return 'deleted'
