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
  oldest = oldest_due_pending(queue, now_s, oldest)
end
if oldest then
  out[1] = fmt(oldest)
end
return {now_s, out}
