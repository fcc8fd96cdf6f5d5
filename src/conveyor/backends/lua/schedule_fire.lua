-- schedule_fire: a schedule's compare-and-set and its tick jobs, in one atomic step.
-- ARGV: name, expected ('' = run now: no compare, next_run_at unchanged), next, then 5 per job:
--   meta ("id|task|queue|priority|max_attempts"), payload, on_complete ('' = none),
--   group ('' = none), tick.
-- The compare-and-set is what makes a tick one job however many workers race: only the call
-- that still finds next_run_at at `expected` moves it on and stores the jobs.
-- Returns 1 (applied) or 0.
local sk = B .. 's:' .. ARGV[1]
local f = redis.call('HMGET', sk, 'next_run_at', 'paused')
if not f[1] then
  return 0
end
if ARGV[2] ~= '' then
  if f[2] == '1' or tonumber(f[1]) ~= tonumber(ARGV[2]) then
    return 0
  end
  redis.call('HSET', sk, 'next_run_at', ARGV[3])
end
local _, now_s = clock()
local last_id, last_tick = false, false
for i = 4, #ARGV, 5 do
  local tick = ARGV[i + 4]
  last_id = store_job(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], now_s, {'schedule', ARGV[1], 'scheduled_for', tick})
  last_tick = tick
end
if last_id then
  redis.call('HSET', sk, 'last_run_at', last_tick, 'last_job_id', last_id)
end
flush()
return 1
