-- next_due: how long an idle worker of these queues may block.
-- ARGV: queue...
-- Returns -1 if a job is due now; else the microseconds until the earliest
-- waiting job is due (-2 if none waits). In the not-due case the queues'
-- wake-up lists are emptied in the same atomic step: any token still there
-- was for a job already claimed, and a later enqueue pushes a fresh one, so
-- the worker's following BLPOP can neither miss a job nor spin on stale tokens.

local now, now_s = clock()
local earliest = false
for _, queue in ipairs(ARGV) do
  local ps = redis.call('ZRANGE', B .. 'wp:' .. queue, 0, -1)
  for _, priority in ipairs(ps) do
    local head = redis.call('ZRANGE', waiting_key(queue, priority), 0, 0, 'WITHSCORES')
    if head[2] then
      local due = tonumber(head[2])
      if due <= now then
        return -1
      end
      if not earliest or due < earliest then
        earliest = due
      end
    end
  end
end
for _, queue in ipairs(ARGV) do
  redis.call('DEL', B .. 'n:' .. queue)
end
if not earliest then
  return -2
end
return math.ceil((earliest - now) * 1000000)
