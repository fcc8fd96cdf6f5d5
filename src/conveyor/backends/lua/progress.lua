-- progress: store running jobs' progress, each fenced by its lease token.
-- ARGV: id, lease_token, fraction ('' = none), message ('' with has_message 0 = none),
--   has_message (1 | 0), in fives.
-- The stored value is the JSON {"fraction", "message", "updated_at"} (server clock).

local now = clock()
for i = 1, #ARGV, 5 do
  local jk = B .. 'j:' .. ARGV[i]
  local f = redis.call('HMGET', jk, 'state', 'lease_token')
  if f[1] == 'processing' and f[2] == ARGV[i + 1] then
    local fraction = cjson.null
    if ARGV[i + 2] ~= '' then
      fraction = tonumber(ARGV[i + 2])
    end
    local message = cjson.null
    if ARGV[i + 4] == '1' then
      message = ARGV[i + 3]
    end
    redis.call('HSET', jk, 'progress',
      cjson.encode({fraction = fraction, message = message, updated_at = now}))
  end
end
return 1
