-- purge: delete up to `batch` jobs in the given final states that finished
-- before `before`, with their attempt records.
-- ARGV: before (POSIX seconds as text), batch, state...
-- Returns how many were deleted.
-- A job finishes after it was created, so only jobs created before `before`
-- can qualify: the walk follows each queue's created_at index up to there and
-- checks finished_at. (Deletions are deferred to flush(), so the walk's
-- offsets stay valid while it goes.)

local before, remaining, n = tonumber(ARGV[1]), tonumber(ARGV[2]), 0
local hi = '(' .. ARGV[1]
local CHUNK = 500
local queues = redis.call('SMEMBERS', B .. 'queues')
for i = 3, #ARGV do
  local state = ARGV[i]
  for _, queue in ipairs(queues) do
    local key, start = B .. 'sq:' .. queue .. ':' .. state, 0
    while remaining > 0 do
      local ids = redis.call('ZRANGEBYSCORE', key, '-inf', hi, 'LIMIT', start, CHUNK)
      for _, id in ipairs(ids) do
        local f = redis.call('HMGET', B .. 'j:' .. id, 'state', 'queue', 'priority', 'key', 'finished_at')
        if f[1] == state and tonumber(f[5]) < before then
          delete_job(id, f)
          n = n + 1
          remaining = remaining - 1
          if remaining == 0 then
            break
          end
        end
      end
      if #ids < CHUNK then
        break
      end
      start = start + CHUNK
    end
  end
end
flush()
return n
