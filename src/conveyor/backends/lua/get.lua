-- get: jobs' fields and attempt records, read in one atomic step.
-- ARGV: with_attempts (1 | 0), id...
-- Returns per id: {flat HGETALL}, {attempt records, oldest first}.

local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  out[#out + 1] = redis.call('HGETALL', B .. 'j:' .. id)
  if ARGV[1] == '1' then
    out[#out + 1] = redis.call('LRANGE', B .. 'a:' .. id, 0, -1)
  else
    out[#out + 1] = {}
  end
end
return out
