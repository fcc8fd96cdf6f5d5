-- alert_save: create or update alerts (al:<name> hashes, named in the set "alerts").
-- ARGV: 5 per alert: name, url, threshold, window, queue ('' = every queue).
-- last_fired_at is kept.
for i = 1, #ARGV, 5 do
  redis.call('HSET', B .. 'al:' .. ARGV[i], 'url', ARGV[i + 1], 'threshold', ARGV[i + 2],
    'window', ARGV[i + 3], 'queue', ARGV[i + 4])
  redis.call('SADD', B .. 'alerts', ARGV[i])
end
return #ARGV / 5
