-- audits: attempt records across all jobs, newest first.
-- ARGV: offset, limit. Returns job id, record pairs.

local offset, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
if limit <= 0 then
  return out
end
for _, member in ipairs(redis.call('ZREVRANGE', B .. 'audit', offset, offset + limit - 1)) do
  local id, n = string.match(member, '^(.*):(%d+)$')
  local record = redis.call('LINDEX', B .. 'a:' .. id, tonumber(n) - 1)
  if record then
    out[#out + 1] = id
    out[#out + 1] = record
  end
end
return out
