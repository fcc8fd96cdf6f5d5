-- schedule_delete: delete schedules or alerts by name.
-- ARGV: kind ('s:' schedules, 'al:' alerts), set name ('schedules' or 'alerts'), name...
-- Returns how many existed.
local n = 0
for i = 3, #ARGV do
  n = n + redis.call('DEL', B .. ARGV[1] .. ARGV[i])
  redis.call('SREM', B .. ARGV[2], ARGV[i])
end
return n
