-- schedule_save: create or update schedules (s:<name> hashes, named in the set "schedules").
-- ARGV: 9 per schedule: name, task, cron, every, tz, payload, queue, missed, next_run_at
--   ('' = none for cron, every and queue).
-- A changed timing (cron, every, tz) starts over from next_run_at; an unchanged one keeps its
-- place. paused, last_run_at and last_job_id are run-time state and stay.
for i = 1, #ARGV, 9 do
  local name = ARGV[i]
  local sk = B .. 's:' .. name
  local old = redis.call('HMGET', sk, 'cron', 'every', 'tz', 'next_run_at')
  local next_run_at = ARGV[i + 8]
  if old[4] and old[1] == ARGV[i + 2] and old[2] == ARGV[i + 3] and old[3] == ARGV[i + 4] then
    next_run_at = old[4]
  end
  redis.call('HSET', sk, 'task', ARGV[i + 1], 'cron', ARGV[i + 2], 'every', ARGV[i + 3], 'tz', ARGV[i + 4],
    'payload', ARGV[i + 5], 'queue', ARGV[i + 6], 'missed', ARGV[i + 7], 'next_run_at', next_run_at)
  redis.call('HSETNX', sk, 'paused', '0')
  redis.call('SADD', B .. 'schedules', name)
end
return #ARGV / 9
