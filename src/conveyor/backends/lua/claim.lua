-- claim: lease up to `limit` due jobs of the given queues in the kit's claim order
-- (backends/kit.py): highest priority first, then earliest due time, then id (FIFO).
-- ARGV: limit, lease_seconds, worker, lease_token, queue...
-- Returns 13 fields per job (a flat array): id, task, queue, payload, attempt,
-- max_attempts, priority, key, on_complete, created_at, run_at, prior_attempts ('0'
-- when absent), trace_context (nil when absent). docs/redis.md lists the layout.

local now, now_s = clock()
local limit = tonumber(ARGV[1])
local expires = fmt6(now + tonumber(ARGV[2]))
local worker, token = ARGV[3], ARGV[4]

-- Priority levels with waiting jobs, over all requested queues.
local levels, order, seen = {}, {}, {}
for i = 5, #ARGV do
  local queue = ARGV[i]
  if not seen[queue] then
    seen[queue] = true
    local ps = redis.call('ZRANGE', B .. 'wp:' .. queue, 0, -1, 'WITHSCORES')
    for j = 1, #ps, 2 do
      local level = levels[ps[j]]
      if level == nil then
        level = {score = tonumber(ps[j + 1]), queues = {}}
        levels[ps[j]] = level
        order[#order + 1] = ps[j]
      end
      level.queues[#level.queues + 1] = queue
    end
  end
end
table.sort(order, function(a, b) return levels[a].score > levels[b].score end)

-- Pick the due jobs: each (queue, priority) set is ordered by (due, id); with
-- several queues at one level, merge their heads the same way.
local picked = {} -- flat: id, queue, priority
local n = 0
for _, priority in ipairs(order) do
  if n >= limit then
    break
  end
  local qs = levels[priority].queues
  if #qs == 1 then
    local ids = redis.call('ZRANGEBYSCORE', waiting_key(qs[1], priority), '-inf', now_s,
      'LIMIT', 0, limit - n)
    for _, id in ipairs(ids) do
      picked[#picked + 1] = id
      picked[#picked + 1] = qs[1]
      picked[#picked + 1] = priority
      n = n + 1
    end
  else
    local cands = {}
    for _, queue in ipairs(qs) do
      local r = redis.call('ZRANGEBYSCORE', waiting_key(queue, priority), '-inf', now_s,
        'WITHSCORES', 'LIMIT', 0, limit - n)
      for j = 1, #r, 2 do
        cands[#cands + 1] = {r[j], tonumber(r[j + 1]), queue}
      end
    end
    table.sort(cands, function(a, b)
      if a[2] ~= b[2] then
        return a[2] < b[2]
      end
      return a[1] < b[1]
    end)
    for j = 1, math.min(#cands, limit - n) do
      picked[#picked + 1] = cands[j][1]
      picked[#picked + 1] = cands[j][3]
      picked[#picked + 1] = priority
    end
    n = n + math.min(#cands, limit - n)
  end
end

local out = {}
for i = 1, #picked, 3 do
  local id, queue, priority = picked[i], picked[i + 1], picked[i + 2]
  local jk = B .. 'j:' .. id
  local f = redis.call('HMGET', jk, 'state', 'task', 'payload', 'attempt', 'max_attempts', 'key',
    'on_complete', 'created_at', 'run_at', 'prior_attempts', 'trace_context')
  wait_remove(queue, priority, id)
  if f[1] == 'pending' or f[1] == 'retry' then
    local attempt = tonumber(f[4]) + 1
    redis.call('HSET', jk, 'state', 'processing', 'attempt', attempt, 'lease_token', token,
      'lease_expires_at', expires, 'worker', worker, 'started_at', now_s)
    index_remove(f[1], queue, id)
    index_add('processing', queue, f[8], id)
    zadd(B .. 'leases', expires, id)
    out[#out + 1] = id
    out[#out + 1] = f[2]
    out[#out + 1] = queue
    out[#out + 1] = f[3]
    out[#out + 1] = attempt
    out[#out + 1] = f[5]
    out[#out + 1] = priority
    out[#out + 1] = f[6]
    out[#out + 1] = f[7]
    out[#out + 1] = f[8]
    out[#out + 1] = f[9]
    out[#out + 1] = f[10] or '0'
    out[#out + 1] = f[11]
  end
  -- (a waiting entry whose job is not waiting cannot happen; it is dropped above)
end
flush()
return out
