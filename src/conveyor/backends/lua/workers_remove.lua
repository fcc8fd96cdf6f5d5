-- workers_remove: take workers off the list at once (a clean stop).
-- ARGV: id...

for i = 1, #ARGV do
  local id = ARGV[i]
  redis.call('HDEL', B .. 'workers', id)
  redis.call('HDEL', B .. 'workers:seen', id)
  redis.call('ZREM', B .. 'workers:expires', id)
end
return #ARGV
