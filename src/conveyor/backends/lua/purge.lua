-- purge: delete up to `batch` jobs in the given final states that finished
-- before `before`, with their attempt records.
-- ARGV: before (exclusive ZRANGEBYSCORE bound, e.g. '(1712345678.5'), batch, state...
-- Returns how many were deleted.

local hi, remaining, n = ARGV[1], tonumber(ARGV[2]), 0
for i = 3, #ARGV do
  if remaining <= 0 then
    break
  end
  local ids = redis.call('ZRANGEBYSCORE', B .. 'f:' .. ARGV[i], '-inf', hi, 'LIMIT', 0, remaining)
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', B .. 'j:' .. id, 'state', 'queue', 'priority', 'key')
    if f[1] == ARGV[i] then
      delete_job(id, f)
      n = n + 1
    else
      zrem(B .. 'f:' .. ARGV[i], id) -- cannot happen; keeps the index honest if it did
    end
  end
  remaining = remaining - #ids
end
flush()
return n
