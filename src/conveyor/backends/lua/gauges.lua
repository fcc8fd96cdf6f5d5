-- gauges: per queue, counts by state (ZCARDs of the state indexes) and the due time of
-- its oldest due pending job, for /metrics.
-- ARGV: the state words. Returns now, then per queue: name, oldest due time (false if
-- none), and its counts in the order of ARGV.

local _, now_s = clock()
local out = {now_s}
for _, queue in ipairs(redis.call('SMEMBERS', B .. 'queues')) do
  local row = {queue, false}
  for _, state in ipairs(ARGV) do
    row[#row + 1] = redis.call('ZCARD', B .. 'sq:' .. queue .. ':' .. state)
  end
  -- Waiting sets hold retry jobs too: walk each level's due head to its first pending job.
  local oldest = false
  for _, priority in ipairs(redis.call('ZRANGE', B .. 'wp:' .. queue, 0, -1)) do
    local key, start, done = waiting_key(queue, priority), 0, false
    while not done do
      local r = redis.call('ZRANGEBYSCORE', key, '-inf', now_s, 'WITHSCORES', 'LIMIT', start, 100)
      for j = 1, #r, 2 do
        local due = tonumber(r[j + 1])
        if oldest and due >= oldest then
          done = true
          break
        end
        if redis.call('HGET', B .. 'j:' .. r[j], 'state') == 'pending' then
          oldest = due
          done = true
          break
        end
      end
      if #r < 200 then
        done = true
      end
      start = start + 100
    end
  end
  if oldest then
    row[2] = fmt(oldest)
  end
  for _, v in ipairs(row) do
    out[#out + 1] = v
  end
end
return out
