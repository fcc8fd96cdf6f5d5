-- failures_since: jobs that entered failed at or after `since`, from the fl:<queue> sets.
-- ARGV: since, limit, keep_after (entries older than this are trimmed), queue ('' = all).
-- Returns {count, id...} with the newest ids, at most `limit`.
local queues
if ARGV[4] ~= '' then
  queues = {ARGV[4]}
else
  queues = redis.call('SMEMBERS', B .. 'queues')
end
local count, found = 0, {}
for _, queue in ipairs(queues) do
  local key = B .. 'fl:' .. queue .. ':'
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. ARGV[3])
  count = count + redis.call('ZCOUNT', key, ARGV[1], '+inf')
  local newest = redis.call('ZREVRANGEBYSCORE', key, '+inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
  for i = 1, #newest, 2 do
    found[#found + 1] = {tonumber(newest[i + 1]), newest[i]}
  end
end
table.sort(found, function(a, b)
  if a[1] ~= b[1] then
    return a[1] > b[1]
  end
  return a[2] > b[2]
end)
local out = {count}
for i = 1, math.min(#found, tonumber(ARGV[2])) do
  out[#out + 1] = found[i][2]
end
return out
