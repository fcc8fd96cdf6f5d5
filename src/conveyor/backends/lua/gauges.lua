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
  local oldest = oldest_due_pending(queue, now_s, false)
  if oldest then
    row[2] = fmt(oldest)
  end
  for _, v in ipairs(row) do
    out[#out + 1] = v
  end
end
return out
