-- enqueue: store new jobs in one atomic step, honouring idempotency keys.
-- ARGV: a sequence of records, each starting with a header (docs/redis.md, "The enqueue
-- arguments"; names are [A-Za-z0-9_.-] and a W3C traceparent is hex and '-', so '|'
-- cannot occur in the packed fields):
--   a run of plain jobs (no key, callback or group) sharing their other fields:
--     "P|n|task|queue|priority|run_at|delay|max_attempts|trace_context", then n × (id, payload);
--   one job with any field: "J|id|task|queue|priority|run_at|delay|max_attempts|key_mode|
--     trace_context", then payload, key ('' = none), on_complete ('' = none), group ('' = none).
-- run_at is POSIX seconds as text ('' = now + delay), key_mode 'keep' or 'replace',
-- trace_context '' = none. Packing the shared fields once per run spares the client and
-- the script most of their per-job work.
-- Returns {flags, id, state, id, state, ...}: flags has one character per job in input order,
-- '1' = stored now as pending under its own id, '0' = not stored (the same id was already
-- stored, or an idempotency key's holder answered): then the next id, state pair is the
-- job that answered, in input order.

local now, now_s = clock()
local flags = {} -- pieces of the reply's flags text, in order
local ones = 0 -- jobs stored since the last piece: their '1's, written as one piece
local answered = {}
local queues = {}
local stored_now = {} -- ids stored by this call: a repeated id in one batch is stored once
local due_after = {} -- delay text -> due time text, computed once per distinct delay

local RUN = '^P|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'
local ONE = '^J|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'
local P = string.byte('P')

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

local function flush_ones()
  if ones > 0 then
    flags[#flags + 1] = string.rep('1', ones)
    ones = 0
  end
end

local function answer(id, state)
  flush_ones()
  flags[#flags + 1] = '0'
  answered[#answered + 1] = id
  answered[#answered + 1] = state
end

-- The job's hash and its waiting and state index entries (the stored layout of docs/redis.md).
local function insert(jk, id, task, queue, priority, max_attempts, payload, due, trace, extra)
  if trace == '' and extra == nil then
    redis.call('HSET', jk, 'task', task, 'queue', queue, 'state', 'pending', 'payload', payload,
      'priority', priority, 'run_at', due, 'created_at', now_s, 'attempt', '0', 'max_attempts', max_attempts)
  else
    local fields = {
      'task', task, 'queue', queue, 'state', 'pending', 'payload', payload,
      'priority', priority, 'run_at', due, 'created_at', now_s, 'attempt', '0', 'max_attempts', max_attempts,
    }
    if trace ~= '' then
      fields[#fields + 1] = 'trace_context'
      fields[#fields + 1] = trace
    end
    for j = 1, #(extra or {}) do
      fields[#fields + 1] = extra[j]
    end
    redis.call('HSET', jk, unpack(fields))
  end
  wait_add(queue, priority, due, id)
  index_add('pending', queue, now_s, id)
  stored_now[id] = true
  ones = ones + 1
end

-- The state of a stored job with this id (false: none), for a producer retrying after a
-- lost reply: the same job again is never a duplicate.
local function stored_state(jk, id)
  if stored_now[id] then
    return 'pending'
  end
  return redis.call('HGET', jk, 'state') or false
end

-- replace mode on a waiting holder: its arguments and timing become the new ones.
local function replace(holder, priority, max_attempts, payload, on_complete, due, trace)
  flush() -- the holder may have been inserted earlier in this same call
  local jk = B .. 'j:' .. holder
  local f = redis.call('HMGET', jk, 'queue', 'priority')
  redis.call('HSET', jk, 'payload', payload, 'priority', priority, 'run_at', due,
    'max_attempts', max_attempts)
  if on_complete ~= '' then
    redis.call('HSET', jk, 'on_complete', on_complete)
  else
    redis.call('HDEL', jk, 'on_complete')
  end
  if trace ~= '' then
    redis.call('HSET', jk, 'trace_context', trace)
  else
    redis.call('HDEL', jk, 'trace_context')
  end
  redis.call('ZREM', waiting_key(f[1], f[2]), holder)
  if managed(f[1]) then
    redis.call('ZREM', fair_key(f[1], f[2]), holder)
  end
  emptied[waiting_key(f[1], f[2])] = {f[1], f[2]}
  wait_add(f[1], priority, due, holder)
end

-- A run of plain jobs: one EXISTS over all their hashes settles the usual case (none stored).
local function store_run(i)
  local n, task, queue, priority, run_at, delay, max_attempts, trace = string.match(ARGV[i], RUN)
  n = tonumber(n)
  local due = due_time(run_at, delay)
  local first, last = i + 1, i + 2 * n
  local keys = {}
  for j = first, last, 2 do
    keys[#keys + 1] = B .. 'j:' .. ARGV[j]
  end
  local seen = false
  for s = 1, n, 4000 do
    if redis.call('EXISTS', unpack(keys, s, math.min(s + 3999, n))) > 0 then
      seen = true
    end
  end
  if seen or managed(queue) then
    local k = 0
    for j = first, last, 2 do
      k = k + 1
      local id, jk = ARGV[j], keys[k]
      local stored = (seen or stored_now[id]) and stored_state(jk, id)
      if stored then
        answer(id, stored)
      else
        insert(jk, id, task, queue, priority, max_attempts, ARGV[j + 1], due, trace, nil)
      end
    end
  else
    -- The usual case, inlined: none stored yet and an unmanaged queue. The index writes
    -- go straight into the merged ZADDs that flush() sends (lib.lua).
    local waiting = wait_batch(queue, priority, n)
    local pending = zadd_batch(memo_key('sq:', queue, 'pending'))
    local w, p = #waiting, #pending
    local k = 0
    for j = first, last, 2 do
      k = k + 1
      local id = ARGV[j]
      if stored_now[id] then
        answer(id, 'pending')
      else
        if trace == '' then
          redis.call('HSET', keys[k], 'task', task, 'queue', queue, 'state', 'pending', 'payload', ARGV[j + 1],
            'priority', priority, 'run_at', due, 'created_at', now_s, 'attempt', '0', 'max_attempts', max_attempts)
        else
          redis.call('HSET', keys[k], 'task', task, 'queue', queue, 'state', 'pending', 'payload', ARGV[j + 1],
            'priority', priority, 'run_at', due, 'created_at', now_s, 'attempt', '0', 'max_attempts', max_attempts,
            'trace_context', trace)
        end
        stored_now[id] = true
        ones = ones + 1
        waiting[w + 1] = due
        waiting[w + 2] = id
        pending[p + 1] = now_s
        pending[p + 2] = id
        w, p = w + 2, p + 2
      end
    end
  end
  queues[queue] = true
  return last + 1
end

-- One job with a key, a callback or a group.
local function store_one(i)
  local id, task, queue, priority, run_at, delay, max_attempts, mode, trace = string.match(ARGV[i], ONE)
  local payload, key, on_complete, group = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local jk = B .. 'j:' .. id
  local stored = stored_state(jk, id)
  if stored then
    answer(id, stored)
    return i + 5
  end
  local due = due_time(run_at, delay)
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
    answer(holder, holder_state)
  elseif holder and (holder_state == 'pending' or holder_state == 'retry') then
    replace(holder, priority, max_attempts, payload, on_complete, due, trace)
    answer(holder, holder_state)
  else
    -- No holder, or replace mode with a running/completed one: the newest arguments run next.
    local extra = {}
    if key ~= '' then
      extra[#extra + 1] = 'key'
      extra[#extra + 1] = key
    end
    if on_complete ~= '' then
      extra[#extra + 1] = 'on_complete'
      extra[#extra + 1] = on_complete
    end
    if group ~= '' then
      extra[#extra + 1] = 'group_key'
      extra[#extra + 1] = group
      extra[#extra + 1] = 'fair_rank'
      extra[#extra + 1] = group_rank(queue, group) -- the queue is managed already (below)
    end
    insert(jk, id, task, queue, priority, max_attempts, payload, due, trace, extra)
    if key ~= '' then
      redis.call('SET', B .. 'k:' .. key, id)
    end
    queues[queue] = true
  end
  return i + 5
end

-- A grouped job makes its queue managed: before any job of the batch waits in it.
local i = 1
while i <= #ARGV do
  if string.byte(ARGV[i], 1) == P then
    i = i + 1 + 2 * tonumber(string.match(ARGV[i], '^P|([^|]*)|'))
  else
    if ARGV[i + 4] ~= '' then
      manage(string.match(ARGV[i], '^J|[^|]*|[^|]*|([^|]*)|'))
    end
    i = i + 5
  end
end

i = 1
while i <= #ARGV do
  if string.byte(ARGV[i], 1) == P then
    i = store_run(i)
  else
    i = store_one(i)
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
flush_ones()
local out = {table.concat(flags)}
for j = 1, #answered do
  out[#out + 1] = answered[j]
end
return out
