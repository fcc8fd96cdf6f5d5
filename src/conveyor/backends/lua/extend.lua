-- extend: renew the leases still held (same token, still processing).
-- ARGV: lease_seconds, then id, lease_token pairs.
-- Returns the number of lost leases, the lost ids, then the ids (among the
-- held ones) whose cancellation was requested.

local now = clock()
local expires = fmt6(now + tonumber(ARGV[1]))
local lost, flagged = {}, {}
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local jk = B .. 'j:' .. id
  local f = redis.call('HMGET', jk, 'state', 'lease_token', 'cancel_requested')
  if f[1] == 'processing' and f[2] == ARGV[i + 1] then
    redis.call('HSET', jk, 'lease_expires_at', expires)
    zadd(B .. 'leases', expires, id)
    if f[3] == '1' then
      flagged[#flagged + 1] = id
    end
  else
    lost[#lost + 1] = id
  end
end
flush()
local out = {#lost}
for _, id in ipairs(lost) do
  out[#out + 1] = id
end
for _, id in ipairs(flagged) do
  out[#out + 1] = id
end
return out
