-- finish: apply attempt outcomes, each fenced by its lease token, and record
-- their audit entries.
-- ARGV: key_retention_ms, audit_max, then 5 per outcome: meta, result, error,
--   traceback, record, where meta = "id|lease_token|kind|retry_delay|nulls"
--   (hex ids and tokens, a kind word and numbers: no '|' in any),
--   nulls = bit flags for the absent values (1 result, 2 error, 4 traceback),
--   record = the attempt's JSON audit record ('' = none: it never started), an array
--   without its last field, the payload: this script appends the job's own (the kit's
--   resubmit history rule, backends/kit.py), so the arguments never travel twice.
-- Returns 1 (applied) or 0 (the lease was lost) per outcome.

local now, now_s = clock()
local retention_ms = tonumber(ARGV[1])
local audit_max = tonumber(ARGV[2])
local applied = {}

local function set_or_clear(jk, field, value, is_null)
  if is_null then
    redis.call('HDEL', jk, field)
  else
    redis.call('HSET', jk, field, value)
  end
end

for i = 3, #ARGV, 5 do
  local id, token, kind, delay, nulls = string.match(ARGV[i], '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  local jk = B .. 'j:' .. id
  local f = redis.call('HMGET', jk, 'state', 'lease_token', 'queue', 'priority', 'created_at', 'key',
    'run_at', 'payload')
  if f[1] ~= 'processing' or f[2] ~= token then
    applied[#applied + 1] = 0
  else
    applied[#applied + 1] = 1
    local queue, created = f[3], f[5]
    nulls = tonumber(nulls)
    local no_error, no_trace = (nulls % 4) >= 2, nulls >= 4
    zrem(B .. 'leases', id)
    index_remove('processing', queue, id)
    if kind == 'completed' then
      if nulls % 2 == 1 then
        redis.call('HSET', jk, 'state', 'completed', 'finished_at', now_s)
        redis.call('HDEL', jk, 'result', 'error', 'traceback', 'lease_token', 'lease_expires_at')
      else
        redis.call('HSET', jk, 'state', 'completed', 'finished_at', now_s, 'result', ARGV[i + 1])
        redis.call('HDEL', jk, 'error', 'traceback', 'lease_token', 'lease_expires_at')
      end
      index_add('completed', queue, created, id)
      key_retain(f[6], id, retention_ms)
      finished(id)
    elseif kind == 'retry' then
      local due = fmt6(now + tonumber(delay))
      redis.call('HSET', jk, 'state', 'retry', 'run_at', due)
      redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
      set_or_clear(jk, 'error', ARGV[i + 2], no_error)
      set_or_clear(jk, 'traceback', ARGV[i + 3], no_trace)
      index_add('retry', queue, created, id)
      wait_add(queue, f[4], due, id)
    elseif kind == 'released' then
      -- Back in line where it was (run_at unchanged); the attempt did not count.
      redis.call('HSET', jk, 'state', 'pending')
      redis.call('HINCRBY', jk, 'attempt', -1)
      redis.call('HDEL', jk, 'lease_token', 'lease_expires_at', 'worker', 'started_at')
      index_add('pending', queue, created, id)
      wait_add(queue, f[4], f[7], id)
    else -- failed or cancelled
      redis.call('HSET', jk, 'state', kind, 'finished_at', now_s)
      redis.call('HDEL', jk, 'lease_token', 'lease_expires_at')
      set_or_clear(jk, 'error', ARGV[i + 2], no_error)
      set_or_clear(jk, 'traceback', ARGV[i + 3], no_trace)
      index_add(kind, queue, created, id)
      key_release(f[6], id)
      finished(id)
    end
    local record = ARGV[i + 4]
    if record ~= '' then
      audit(id, string.sub(record, 1, -2) .. ',' .. cjson.encode(f[8]) .. ']')
    end
  end
end
flush()
audit_flush(audit_max)
return applied
