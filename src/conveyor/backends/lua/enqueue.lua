-- enqueue: store new jobs in one atomic step, honouring idempotency keys.
-- ARGV: 5 per job: meta, payload, key ('' = none), on_complete ('' = none),
--   group ('' = none), where
--   meta = "id|task|queue|priority|run_at|delay|max_attempts|key_mode" (names are
--   [A-Za-z0-9_.-], so '|' cannot occur in them; packing the short fields into one
--   argument halves the client's cost per job), run_at is POSIX seconds as text
--   ('' = now + delay), key_mode is 'keep' or 'replace'.
-- Returns id, state, created (1 | 0) per job, in input order.

local now, now_s = clock()
local out = {}
local queues = {}
local due_after = {} -- delay text -> due time text, computed once per distinct delay

local META = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'

local function due_time(run_at, delay)
  if run_at ~= '' then
    return run_at
  end
  local due = due_after[delay]
  if due == nil then
    local seconds = tonumber(delay)
    due = seconds == 0 and now_s or fmt6(now + seconds)
    due_after[delay] = due
  end
  return due
end

local function insert(id, task, queue, priority, max_attempts, i, due)
  local fields = {
    'task', task, 'queue', queue, 'state', 'pending', 'payload', ARGV[i + 1],
    'priority', priority, 'run_at', due, 'created_at', now_s, 'attempt', '0', 'max_attempts', max_attempts,
  }
  if ARGV[i + 2] ~= '' then
    fields[#fields + 1] = 'key'
    fields[#fields + 1] = ARGV[i + 2]
  end
  if ARGV[i + 3] ~= '' then
    fields[#fields + 1] = 'on_complete'
    fields[#fields + 1] = ARGV[i + 3]
  end
  local group = ARGV[i + 4]
  if group ~= '' then
    fields[#fields + 1] = 'group_key'
    fields[#fields + 1] = group
    fields[#fields + 1] = 'fair_rank'
    fields[#fields + 1] = group_rank(queue, group) -- the queue is managed already (below)
  end
  redis.call('HSET', B .. 'j:' .. id, unpack(fields))
  wait_add(queue, priority, due, id)
  index_add('pending', queue, now_s, id)
  queues[queue] = true
end

-- replace mode on a waiting holder: its arguments and timing become the new ones.
local function replace(holder, priority, max_attempts, i, due)
  flush() -- the holder may have been inserted earlier in this same call
  local jk = B .. 'j:' .. holder
  local f = redis.call('HMGET', jk, 'queue', 'priority')
  redis.call('HSET', jk, 'payload', ARGV[i + 1], 'priority', priority, 'run_at', due,
    'max_attempts', max_attempts)
  if ARGV[i + 3] ~= '' then
    redis.call('HSET', jk, 'on_complete', ARGV[i + 3])
  else
    redis.call('HDEL', jk, 'on_complete')
  end
  redis.call('ZREM', waiting_key(f[1], f[2]), holder)
  if managed(f[1]) then
    redis.call('ZREM', fair_key(f[1], f[2]), holder)
  end
  emptied[waiting_key(f[1], f[2])] = {f[1], f[2]}
  wait_add(f[1], priority, due, holder)
end

-- A grouped job makes its queue managed: before any job of the batch waits in it.
for i = 1, #ARGV, 5 do
  if ARGV[i + 4] ~= '' then
    manage(string.match(ARGV[i], '^[^|]*|[^|]*|([^|]*)|'))
  end
end

for i = 1, #ARGV, 5 do
  local id, task, queue, priority, run_at, delay, max_attempts, mode = string.match(ARGV[i], META)
  local stored = redis.call('EXISTS', B .. 'j:' .. id) == 1 and redis.call('HGET', B .. 'j:' .. id, 'state')
  if stored then
    -- The same job again (a producer retrying after a lost reply): never a duplicate.
    out[#out + 1] = id
    out[#out + 1] = stored
    out[#out + 1] = 0
  else
    local due = due_time(run_at, delay)
    local key = ARGV[i + 2]
    local holder, holder_state = false, false
    if key ~= '' then
      holder = redis.call('GET', B .. 'k:' .. key)
      if holder then
        holder_state = redis.call('HGET', B .. 'j:' .. holder, 'state')
        if not holder_state or holder_state == 'failed' or holder_state == 'cancelled' then
          holder = false
        end
      end
    end
    if holder and mode == 'keep' then
      out[#out + 1] = holder
      out[#out + 1] = holder_state
      out[#out + 1] = 0
    elseif holder and (holder_state == 'pending' or holder_state == 'retry') then
      replace(holder, priority, max_attempts, i, due)
      out[#out + 1] = holder
      out[#out + 1] = holder_state
      out[#out + 1] = 0
    else
      -- No holder, or replace mode with a running/completed one: the newest arguments run next.
      insert(id, task, queue, priority, max_attempts, i, due)
      if key ~= '' then
        redis.call('SET', B .. 'k:' .. key, id)
      end
      out[#out + 1] = id
      out[#out + 1] = 'pending'
      out[#out + 1] = 1
    end
  end
end

flush()
local names = {}
for queue in pairs(queues) do
  names[#names + 1] = queue
end
if #names > 0 then
  redis.call('SADD', B .. 'queues', unpack(names))
end
return out
