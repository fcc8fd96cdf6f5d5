-- workers_beat: register or renew live workers on the server's clock.
-- ARGV: ttl_seconds, then id, info (the beat's JSON) pairs.
-- Keys: "workers" (hash id -> info), "workers:seen" (hash id -> last beat, text),
-- "workers:expires" (sorted set id by expiry). Expired entries are forgotten here and
-- by workers_live, so the three keys hold only live workers.

local now, now_s = clock()
local expires = fmt6(now + tonumber(ARGV[1]))
local gone = redis.call('ZRANGEBYSCORE', B .. 'workers:expires', '-inf', '(' .. now_s)
if #gone > 0 then
  chunked('HDEL', B .. 'workers', gone)
  chunked('HDEL', B .. 'workers:seen', gone)
  chunked('ZREM', B .. 'workers:expires', gone)
end
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  redis.call('HSET', B .. 'workers', id, ARGV[i + 1])
  redis.call('HSET', B .. 'workers:seen', id, now_s)
  zadd(B .. 'workers:expires', expires, id)
end
flush()
return #gone
