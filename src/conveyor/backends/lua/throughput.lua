-- throughput: jobs that entered completed or failed in each of the last N minutes,
-- from the m:<minute> counters that finish and reap keep (lib.lua, tally_flush).
-- ARGV: minutes (1..1440, checked by the caller), queue ('' = every queue).
-- Returns {now, first minute, completed_1, failed_1, ..., completed_N, failed_N}.
local now, now_s = clock()
local minutes, queue = tonumber(ARGV[1]), ARGV[2]
local first = math.floor(now / 60) - minutes + 1
local out = {now_s, first}
for m = first, first + minutes - 1 do
  local key = B .. 'm:' .. m
  local completed, failed = 0, 0
  if queue ~= '' then
    local f = redis.call('HMGET', key, 'c:' .. queue, 'f:' .. queue)
    completed, failed = tonumber(f[1] or '0'), tonumber(f[2] or '0')
  else
    local f = redis.call('HGETALL', key)
    for i = 1, #f, 2 do
      local kind = string.sub(f[i], 1, 2)
      if kind == 'c:' then
        completed = completed + tonumber(f[i + 1])
      elseif kind == 'f:' then
        failed = failed + tonumber(f[i + 1])
      end
    end
  end
  out[#out + 1] = completed
  out[#out + 1] = failed
end
return out
