-- reap: jobs whose lease lapsed (their worker died or hung), given the kit's
-- reap verdict (backends/kit.py): cancellation requested -> cancelled; attempts
-- of this submission spent (attempt - prior_attempts >= max_attempts) -> failed as a
-- poison pill; else -> pending, the attempt counted.
-- ARGV: limit, error text (base.WORKER_LOST), audit_max.
-- Returns requeued, failed.

local now, now_s = clock()
local lost_error = ARGV[2]
local requeued, failed = 0, 0
local ids = redis.call('ZRANGEBYSCORE', B .. 'leases', '-inf', '(' .. now_s, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do
  local jk = B .. 'j:' .. id
  local f = redis.call('HMGET', jk, 'state', 'attempt', 'max_attempts', 'worker', 'started_at',
    'cancel_requested', 'queue', 'priority', 'created_at', 'key', 'prior_attempts', 'payload')
  zrem(B .. 'leases', id)
  if f[1] == 'processing' then
    local queue, created = f[7], f[9]
    local outcome = 'lost'
    index_remove('processing', queue, id)
    redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
    if f[6] == '1' then
      outcome = 'cancelled'
      redis.call('HSET', jk, 'state', 'cancelled', 'finished_at', now_s, 'error', lost_error)
      redis.call('HDEL', jk, 'traceback')
      index_add('cancelled', queue, created, id)
      key_release(f[10], id)
      finished(id)
    elseif tonumber(f[2]) - tonumber(f[11] or '0') >= tonumber(f[3]) then
      failed = failed + 1
      redis.call('HSET', jk, 'state', 'failed', 'finished_at', now_s, 'error', lost_error)
      redis.call('HDEL', jk, 'traceback')
      index_add('failed', queue, created, id)
      key_release(f[10], id)
      finished(id)
    else
      requeued = requeued + 1
      redis.call('HSET', jk, 'state', 'pending', 'run_at', now_s, 'error', lost_error)
      index_add('pending', queue, created, id)
      wait_add(queue, f[8], now_s, id)
    end
    audit(id, cjson.encode({
      tonumber(f[2]), f[4] or cjson.null, f[5] or cjson.null, now_s, outcome, lost_error,
      cjson.null, cjson.null, cjson.null, f[12] or cjson.null,
    }))
  end
end
flush()
audit_flush(tonumber(ARGV[3]))
return {requeued, failed}
