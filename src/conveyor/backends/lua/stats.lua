-- stats: counts by queue and state (ZCARDs of the state indexes), and the
-- due time of the oldest due pending job.
-- Returns oldest_run_at (false if none), then per queue with jobs: name and
-- its six counts in the order of ARGV (the state words).

local now, now_s = clock()
local out = {false}
local oldest = false
for _, queue in ipairs(redis.call('SMEMBERS', B .. 'queues')) do
  local row, any = {queue}, false
  for _, state in ipairs(ARGV) do
    local n = redis.call('ZCARD', B .. 'sq:' .. queue .. ':' .. state)
    row[#row + 1] = n
    if n > 0 then
      any = true
    end
  end
  if any then
    for _, v in ipairs(row) do
      out[#out + 1] = v
    end
  end
  -- Waiting sets hold retry jobs too: walk each level's due head to its first pending job.
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
end
if oldest then
  out[1] = fmt(oldest)
end
return {now_s, out}
