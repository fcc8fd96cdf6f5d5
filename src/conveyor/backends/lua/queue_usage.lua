-- queue_usage: how managed queues stand against their limits (backends/flow.py).
-- ARGV: queue names ('' alone = every managed queue).
-- Returns per managed queue: name, {settings hash, flat}, processing, starts in the
-- rate window, {group, waiting, processing, ...} of every group with waiting or
-- processing jobs (the caller picks the busiest). Reads the queue's waiting and
-- processing jobs: an admin call, not a hot path.

local now = clock()
local names = {}
if #ARGV == 1 and ARGV[1] == '' then
  for _, queue in ipairs(redis.call('SMEMBERS', B .. 'queues')) do
    names[#names + 1] = queue
  end
else
  names = ARGV
end
table.sort(names)
local out = {}
for _, queue in ipairs(names) do
  if managed(queue) then
    local qk = B .. 'qs:' .. queue
    local pk = B .. 'sq:' .. queue .. ':processing'
    local started = 0
    local period = redis.call('HGET', qk, 'rate_period')
    if period then
      started = redis.call('ZCOUNT', B .. 'st:' .. queue, '(' .. fmt6(now - tonumber(period)), '+inf')
    end
    local counts, groups = {}, {}
    local function count(id, column)
      local g = redis.call('HGET', B .. 'j:' .. id, 'group_key')
      if g then
        local c = counts[g]
        if c == nil then
          c = {0, 0}
          counts[g] = c
          groups[#groups + 1] = g
        end
        c[column] = c[column] + 1
      end
    end
    for _, priority in ipairs(redis.call('ZRANGE', B .. 'wp:' .. queue, 0, -1)) do
      for _, id in ipairs(redis.call('ZRANGE', fair_key(queue, priority), 0, -1)) do
        count(id, 1)
      end
    end
    for _, id in ipairs(redis.call('ZRANGE', pk, 0, -1)) do
      count(id, 2)
    end
    local flat = {}
    for _, g in ipairs(groups) do
      flat[#flat + 1] = g
      flat[#flat + 1] = counts[g][1]
      flat[#flat + 1] = counts[g][2]
    end
    out[#out + 1] = queue
    out[#out + 1] = redis.call('HGETALL', qk)
    out[#out + 1] = redis.call('ZCARD', pk)
    out[#out + 1] = started
    out[#out + 1] = flat
  end
end
return out
