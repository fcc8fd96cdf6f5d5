-- claim: lease up to `limit` due jobs of the given queues in the kit's claim order
-- (backends/kit.py): highest priority first, then earliest due time, then id (FIFO).
-- Managed queues (flow control, backends/flow.py) are claimed first by the flow
-- claim below, within min(limit, start_limit); the plain claim takes the rest.
-- ARGV: limit, lease_seconds, worker, lease_token, start_limit, queue...
-- Returns 13 fields per job: id, task, queue, payload, attempt, max_attempts,
-- priority, key, on_complete, created_at, run_at, prior_attempts, group (a flat array).

local now, now_s = clock()
local limit = tonumber(ARGV[1])
local expires = fmt6(now + tonumber(ARGV[2]))
local worker, token = ARGV[3], ARGV[4]

local picked = {} -- flat: id, queue, priority
local n = 0

-- The flow claim of one managed queue: its room under concurrency and the sliding-window
-- rate, then a walk of its fair sets (priority levels highest first, fair rank within a
-- level), at most `scan` entries per level, skipping jobs not yet due and groups at their limits.
local function flow_claim(queue, left)
  local s = {}
  local raw = redis.call('HGETALL', B .. 'qs:' .. queue)
  for i = 1, #raw, 2 do
    s[raw[i]] = raw[i + 1]
  end
  if s.paused == '1' then
    return 0
  end
  local room = left
  if s.concurrency then
    room = math.min(room, tonumber(s.concurrency) - redis.call('ZCARD', B .. 'sq:' .. queue .. ':processing'))
  end
  local starts = B .. 'st:' .. queue
  if s.rate_count then
    local since = fmt6(now - tonumber(s.rate_period))
    room = math.min(room, tonumber(s.rate_count) - redis.call('ZCOUNT', starts, '(' .. since, '+inf'))
  end
  if room < 1 then
    return 0
  end
  local rated = s.rate_count or s.group_rate_count
  local grouped = s.group_concurrency or s.group_rate_count
  local busy = nil -- processing jobs per group, counted once when a group limit needs it
  local rooms = {}
  local function group_room(group)
    local r = room
    if s.group_concurrency then
      if busy == nil then
        busy = {}
        for _, id in ipairs(redis.call('ZRANGE', B .. 'sq:' .. queue .. ':processing', 0, -1)) do
          local g = redis.call('HGET', B .. 'j:' .. id, 'group_key')
          if g then
            busy[g] = (busy[g] or 0) + 1
          end
        end
      end
      r = math.min(r, tonumber(s.group_concurrency) - (busy[group] or 0))
    end
    if s.group_rate_count then
      local since = fmt6(now - tonumber(s.group_rate_period))
      local gs = B .. 'sg:' .. queue .. ':' .. group
      r = math.min(r, tonumber(s.group_rate_count) - redis.call('ZCOUNT', gs, '(' .. since, '+inf'))
    end
    return r
  end
  local scan = math.max(room * 4, 64)
  local taken, top = 0, tonumber(s.clock or '0')
  local clock_was = top
  for _, priority in ipairs(redis.call('ZREVRANGE', B .. 'wp:' .. queue, 0, -1)) do
    if taken >= room then
      break
    end
    local wk = waiting_key(queue, priority)
    for _, id in ipairs(redis.call('ZRANGE', fair_key(queue, priority), 0, scan - 1)) do
      if taken >= room then
        break
      end
      local due = redis.call('ZSCORE', wk, id)
      if due and tonumber(due) <= now then
        local f = redis.call('HMGET', B .. 'j:' .. id, 'group_key', 'fair_rank', 'attempt')
        local ok = true
        if grouped and f[1] then
          local r = rooms[f[1]]
          if r == nil then
            r = group_room(f[1])
          end
          rooms[f[1]] = r - 1
          ok = r >= 1
        end
        if ok then
          picked[#picked + 1] = id
          picked[#picked + 1] = queue
          picked[#picked + 1] = priority
          taken = taken + 1
          top = math.max(top, tonumber(f[2] or '0'))
          if rated then
            local member = id .. ':' .. (tonumber(f[3]) + 1)
            if s.rate_count then
              redis.call('ZADD', starts, now_s, member)
            end
            if s.group_rate_count and f[1] then
              redis.call('ZADD', B .. 'sg:' .. queue .. ':' .. f[1], now_s, member)
            end
          end
        end
      end
    end
  end
  if top > clock_was then
    redis.call('HSET', B .. 'qs:' .. queue, 'clock', top)
  end
  -- Starts matter for one window: prune them, and let idle keys expire.
  if s.rate_count then
    redis.call('ZREMRANGEBYSCORE', starts, '-inf', fmt6(now - tonumber(s.rate_period)))
    redis.call('PEXPIRE', starts, math.ceil(tonumber(s.rate_period) * 1000) + 1000)
  end
  if s.group_rate_count then
    local period = tonumber(s.group_rate_period)
    for group in pairs(rooms) do
      local gs = B .. 'sg:' .. queue .. ':' .. group
      redis.call('ZREMRANGEBYSCORE', gs, '-inf', fmt6(now - period))
      redis.call('PEXPIRE', gs, math.ceil(period * 1000) + 1000)
    end
  end
  return taken
end

local plain, seen = {}, {}
local flow_left = math.min(limit, tonumber(ARGV[5]))
for i = 6, #ARGV do
  local queue = ARGV[i]
  if not seen[queue] then
    seen[queue] = true
    if managed(queue) then
      if flow_left > 0 then
        local taken = flow_claim(queue, flow_left)
        flow_left = flow_left - taken
        n = n + taken
      end
    else
      plain[#plain + 1] = queue
    end
  end
end

-- Priority levels with waiting jobs, over the plain queues.
local levels, order = {}, {}
for _, queue in ipairs(plain) do
  do
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
    'on_complete', 'created_at', 'run_at', 'prior_attempts', 'group_key')
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
