-- cancel: a waiting job is cancelled at once; a running one is flagged (its
-- worker sees the flag on its next heartbeat and stops it).
-- ARGV: id, error text for a job cancelled before it ran.
-- Returns 'done' (cancelled now), 'flagged', 'missing', or the state that forbids it.

local id = ARGV[1]
local jk = B .. 'j:' .. id
local f = redis.call('HMGET', jk, 'state', 'queue', 'priority', 'created_at', 'key')
if not f[1] then
  return 'missing'
end
if f[1] == 'processing' then
  redis.call('HSET', jk, 'cancel_requested', 1)
  return 'flagged'
end
if f[1] ~= 'pending' and f[1] ~= 'retry' then
  return f[1]
end
local _, now_s = clock()
redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', now_s, 'error', ARGV[2])
wait_remove(f[2], f[3], id)
index_remove(f[1], f[2], id)
index_add('cancelled', f[2], f[4], id)
key_release(f[5], id)
finished(id)
flush()
return 'done'
