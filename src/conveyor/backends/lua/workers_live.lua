-- workers_live: the workers whose last beat has not expired (expired ones are forgotten).
-- Returns id, info, last_seen triples.

local _, now_s = clock()
local gone = redis.call('ZRANGEBYSCORE', B .. 'workers:expires', '-inf', '(' .. now_s)
if #gone > 0 then
  chunked('HDEL', B .. 'workers', gone)
  chunked('HDEL', B .. 'workers:seen', gone)
  chunked('ZREM', B .. 'workers:expires', gone)
end
local out = {}
local ids = redis.call('ZRANGE', B .. 'workers:expires', 0, -1)
for _, id in ipairs(ids) do
  local info = redis.call('HGET', B .. 'workers', id)
  if info then
    out[#out + 1] = id
    out[#out + 1] = info
    out[#out + 1] = redis.call('HGET', B .. 'workers:seen', id) or now_s
  end
end
return out
