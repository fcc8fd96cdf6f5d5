-- queue_update: change a queue's flow-control settings (backends/flow.py) atomically.
-- ARGV: queue, then field, value pairs; an empty value removes that field. Fields:
--   concurrency, rate_limit, rate_count, rate_period, group_concurrency,
--   group_rate_limit, group_rate_count, group_rate_period, paused ('1' | '0').
-- The queue becomes managed (its waiting jobs enter the fair sets) if it was not.
-- Returns the settings hash, flat.

local queue = ARGV[1]
manage(queue)
local qk = B .. 'qs:' .. queue
for i = 2, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', qk, ARGV[i])
  else
    redis.call('HSET', qk, ARGV[i], ARGV[i + 1])
  end
end
redis.call('SADD', B .. 'queues', queue)
-- A resumed or widened queue may have claimable jobs: wake idle workers.
notify[queue] = 1
flush()
return redis.call('HGETALL', qk)
