-- schedule_pause: pause or resume schedules.
-- ARGV: paused ('1' | '0'), next_run_at ('' = unchanged), name...
-- Returns how many exist.
local n = 0
for i = 3, #ARGV do
  local sk = B .. 's:' .. ARGV[i]
  if redis.call('EXISTS', sk) == 1 then
    n = n + 1
    redis.call('HSET', sk, 'paused', ARGV[1])
    if ARGV[2] ~= '' then
      redis.call('HSET', sk, 'next_run_at', ARGV[2])
    end
  end
end
return n
