-- resubmit: failed or cancelled jobs back to pending with a fresh attempt
-- budget (due now), optionally with new arguments. Attempt numbers keep counting:
-- prior_attempts takes the attempt number (the kit's resubmit history rule).
-- ARGV: has_payload (1 | 0), payload, id...
-- Returns one code per id: 'ok', 'missing', or the state that forbids it. A
-- resubmitted job takes its idempotency key back unless a waiting job holds it
-- (then both run, and the holder keeps answering for the key).

local _, now_s = clock()
local out = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local jk = B .. 'j:' .. id
  local f = redis.call('HMGET', jk, 'state', 'queue', 'priority', 'created_at', 'key', 'attempt')
  local code = 'ok'
  if not f[1] then
    code = 'missing'
  elseif f[1] ~= 'failed' and f[1] ~= 'cancelled' then
    code = f[1]
  elseif f[5] then
    local kk = B .. 'k:' .. f[5]
    local holder = redis.call('GET', kk)
    local hs = holder and holder ~= id and redis.call('HGET', B .. 'j:' .. holder, 'state')
    if hs ~= 'pending' and hs ~= 'retry' then
      redis.call('SET', kk, id)
    end
  end
  if code == 'ok' then
    redis.call('HSET', jk, 'state', 'pending', 'prior_attempts', f[6] or '0', 'run_at', now_s,
      'cancel_requested', '0')
    redis.call('HDEL', jk, 'finished_at', 'started_at', 'error', 'traceback', 'result', 'worker', 'progress')
    if ARGV[1] == '1' then
      redis.call('HSET', jk, 'payload', ARGV[2])
    end
    index_remove(f[1], f[2], id)
    index_add('pending', f[2], f[4], id)
    wait_add(f[2], f[3], now_s, id)
  end
  out[#out + 1] = code
end
flush()
return out
