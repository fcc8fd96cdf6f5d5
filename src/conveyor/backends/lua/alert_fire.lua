-- alert_fire: stamp an alert and store its notification job, in one atomic step, only if the
-- alert has not fired after quiet_since (so it fires at most once per window).
-- ARGV: name, fired_at, quiet_since, meta ("id|task|queue|priority|max_attempts"), payload,
--   on_complete ('' = none), group ('' = none).
-- Returns 1 (fired) or 0.
local ak = B .. 'al:' .. ARGV[1]
if redis.call('EXISTS', ak) == 0 then
  return 0
end
local last = redis.call('HGET', ak, 'last_fired_at')
if last and tonumber(last) > tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', ak, 'last_fired_at', ARGV[2])
local _, now_s = clock()
store_job(ARGV[4], ARGV[5], ARGV[6], ARGV[7] or '', now_s, {})
flush()
return 1
