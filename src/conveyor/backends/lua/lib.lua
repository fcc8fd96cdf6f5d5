-- Conveyor: helpers shared by every script. The loader prepends this file to
-- each script, so every operation is still one EVALSHA of one static text.
--
-- KEYS[1] is the namespace's key base "{prefix}:". Every key a script touches
-- starts with it, so one namespace lives in one hash slot and each script is
-- atomic on a Redis Cluster too. Ids, names and payloads arrive in ARGV and
-- are only ever used as data, never as code.
--
-- Times are POSIX seconds from the server's TIME, stored and scored as text
-- with six decimals. A script formats "now" once and passes that text on:
-- turning a Lua number into text costs about a microsecond per value, more
-- than most of the per-job work. (Lua's own tostring keeps only 14 digits,
-- so floats are never concatenated either.)

if redis.replicate_commands then pcall(redis.replicate_commands) end

local B = KEYS[1]
-- Wake-up tokens per queue: enough to wake a burst of idle workers, bounded.
local MAX_TOKENS = 16

-- The server's now, as a number and as text ("1712345678.000042"). The first reading
-- of a run is kept (run_seconds): the throughput tally counts its jobs in that minute,
-- the one their finished_at falls in.
local run_seconds = false
local function clock()
  local t = redis.call('TIME')
  local usec = t[2]
  if not run_seconds then
    run_seconds = tonumber(t[1])
  end
  return tonumber(t[1]) + tonumber(usec) / 1000000, t[1] .. '.' .. string.rep('0', 6 - #usec) .. usec
end

local function fmt6(x)
  return string.format('%.6f', x)
end

-- Sorted-set writes are deferred and merged per key, so a batch of N jobs
-- costs a few ZADD/ZREM calls rather than N of each. flush() applies removals
-- before additions; a script that removes a member it added earlier in the
-- same run must flush() in between (enqueue's replace path does).
local zadds, zrems, emptied, notify, prio_seen = {}, {}, {}, {}, {}
local audits = {}

local function zadd(key, score, member)
  local t = zadds[key]
  if t == nil then
    t = {}
    zadds[key] = t
  end
  t[#t + 1] = score
  t[#t + 1] = member
end

-- The pending additions to one sorted set, for a caller that appends score, member pairs
-- itself (the bulk path of enqueue.lua): the same batch zadd() fills.
local function zadd_batch(key)
  local t = zadds[key]
  if t == nil then
    t = {}
    zadds[key] = t
  end
  return t
end

local function zrem(key, member)
  local t = zrems[key]
  if t == nil then
    t = {}
    zrems[key] = t
  end
  t[#t + 1] = member
end

-- unpack() is bounded by the Lua C stack: send long argument lists in slices.
local function chunked(cmd, key, t)
  local n = #t
  for i = 1, n, 4000 do
    redis.call(cmd, key, unpack(t, i, math.min(i + 3999, n)))
  end
end

-- Key names are built once per script run: a batch touches few distinct keys.
local key_memo = {}
local function memo_key(kind, a, b)
  local by_a = key_memo[kind]
  if by_a == nil then
    by_a = {}
    key_memo[kind] = by_a
  end
  local by_b = by_a[a]
  if by_b == nil then
    by_b = {}
    by_a[a] = by_b
  end
  local key = by_b[b]
  if key == nil then
    key = B .. kind .. a .. ':' .. b
    by_b[b] = key
  end
  return key
end

local function waiting_key(queue, priority)
  return memo_key('w:', queue, priority)
end

-- The due time of a queue's oldest due pending job, or `oldest` when that is older
-- (false: none yet). Waiting sets hold retry jobs too: walk each level's due head to
-- its first pending job, stopping at anything no older than the best found so far.
local function oldest_due_pending(queue, now_s, oldest)
  for _, priority in ipairs(redis.call('ZRANGE', B .. 'wp:' .. queue, 0, -1)) do
    local key, start, done = waiting_key(queue, priority), 0, false
    while not done do
      local r = redis.call('ZRANGEBYSCORE', key, '-inf', now_s, 'WITHSCORES', 'LIMIT', start, 100)
      for j = 1, #r, 2 do
        local due = tonumber(r[j + 1])
        if oldest and due >= oldest then
          done = true
          break
        end
        if redis.call('HGET', B .. 'j:' .. r[j], 'state') == 'pending' then
          oldest = due
          done = true
          break
        end
      end
      if #r < 200 then
        done = true
      end
      start = start + 100
    end
  end
  return oldest
end

-- Flow control (backends/flow.py states the rules). A queue is managed while
-- its settings hash qs:<queue> exists; the waiting jobs of a managed queue are
-- also in fq:<queue>:<priority>, scored by their fair rank (0 without a group),
-- which is the order the flow claim walks.
local managed_memo = {}
local function managed(queue)
  local m = managed_memo[queue]
  if m == nil then
    m = redis.call('EXISTS', B .. 'qs:' .. queue) == 1
    managed_memo[queue] = m
  end
  return m
end

local function fair_key(queue, priority)
  return memo_key('fq:', queue, priority)
end

-- Make a queue managed: its settings hash, and its waiting jobs in the fair sets.
-- Call before any wait_add of the queue in the same script run.
local function manage(queue)
  if managed(queue) then
    return
  end
  redis.call('HSETNX', B .. 'qs:' .. queue, 'clock', '0')
  managed_memo[queue] = true
  for _, priority in ipairs(redis.call('ZRANGE', B .. 'wp:' .. queue, 0, -1)) do
    local ids = redis.call('ZRANGE', waiting_key(queue, priority), 0, -1)
    for _, id in ipairs(ids) do
      local rank = redis.call('HGET', B .. 'j:' .. id, 'fair_rank') or '0'
      redis.call('ZADD', fair_key(queue, priority), rank, id)
    end
  end
end

-- A waiting (pending or retry) job sits in the sorted set of its queue and
-- priority, scored by its due time; the queue's priority levels are kept in
-- wp:<queue> so a claim visits them highest first.
local function wait_add(queue, priority, due, id)
  local key = waiting_key(queue, priority)
  zadd(key, due, id)
  if managed(queue) then
    zadd(fair_key(queue, priority), redis.call('HGET', B .. 'j:' .. id, 'fair_rank') or '0', id)
  end
  if not prio_seen[key] then
    prio_seen[key] = true
    zadd(B .. 'wp:' .. queue, priority, priority)
  end
  notify[queue] = (notify[queue] or 0) + 1
end

-- For `n` jobs an unmanaged queue's caller adds itself to the returned batch of the waiting
-- set (score, member pairs): what wait_add does for each, but the set lookups once.
local function wait_batch(queue, priority, n)
  local key = waiting_key(queue, priority)
  if not prio_seen[key] then
    prio_seen[key] = true
    zadd(B .. 'wp:' .. queue, priority, priority)
  end
  notify[queue] = (notify[queue] or 0) + n
  return zadd_batch(key)
end

local function wait_remove(queue, priority, id)
  local key = waiting_key(queue, priority)
  zrem(key, id)
  if managed(queue) then
    zrem(fair_key(queue, priority), id)
  end
  if emptied[key] == nil then
    emptied[key] = {queue, priority}
  end
end

-- Recent failures: fl:<queue>: holds the queue's failed jobs by the time they failed,
-- which the alerter counts over its window (failures_since.lua trims old entries).
local failed_at_s = false
local function failures_add(queue, id)
  if not failed_at_s then
    local _, text = clock()
    failed_at_s = text
  end
  zadd(memo_key('fl:', queue, ''), failed_at_s, id)
end

-- Throughput (backends/throughput.py): m:<minute> (minutes since the epoch on the
-- server's clock) counts the jobs that entered completed or failed in that minute,
-- fields c:<queue> and f:<queue>. A script run tallies its jobs in Lua tables and
-- flush() writes one HINCRBY per queue and kind, so a batch of N finishes costs a
-- few writes, not N. Kept MINUTE_TTL seconds: a day (MAX_MINUTES) and an hour more.
local MINUTE_TTL = 90000
local completed_tally, failed_tally = {}, {}

local function tally_flush()
  if next(completed_tally) == nil and next(failed_tally) == nil then
    return
  end
  if not run_seconds then
    clock()
  end
  local key = B .. 'm:' .. math.floor(run_seconds / 60)
  for queue, n in pairs(completed_tally) do
    redis.call('HINCRBY', key, 'c:' .. queue, n)
  end
  for queue, n in pairs(failed_tally) do
    redis.call('HINCRBY', key, 'f:' .. queue, n)
  end
  redis.call('EXPIRE', key, MINUTE_TTL)
  completed_tally, failed_tally = {}, {}
end

-- State indexes: sq:<queue>:<state> by created_at, the one index of a job's
-- state, serves listings, counts and purges (a listing across states or
-- queues merges their sets). A state change is one ZREM and one ZADD.
local function index_add(state, queue, created, id)
  zadd(memo_key('sq:', queue, state), created, id)
  if state == 'completed' then
    completed_tally[queue] = (completed_tally[queue] or 0) + 1
  elseif state == 'failed' then
    failed_tally[queue] = (failed_tally[queue] or 0) + 1
    failures_add(queue, id)
  end
end

local function index_remove(state, queue, id)
  zrem(memo_key('sq:', queue, state), id)
  if state == 'failed' then
    zrem(memo_key('fl:', queue, ''), id)
  end
end

-- The kit's finish wake-up rule: the ids of jobs that reached a final state in
-- this run, PUBLISHed by flush() once, comma-separated, on "finished" for the
-- processes waiting on Job.result (no subscriber: PUBLISH costs next to nothing).
local finished_ids = {}
local function finished(id)
  finished_ids[#finished_ids + 1] = id
end

local function flush()
  tally_flush()
  if #finished_ids > 0 then
    redis.call('PUBLISH', B .. 'finished', table.concat(finished_ids, ','))
    finished_ids = {}
  end
  for key, t in pairs(zrems) do
    chunked('ZREM', key, t)
  end
  for key, t in pairs(zadds) do
    chunked('ZADD', key, t)
  end
  zrems, zadds, prio_seen = {}, {}, {}
  for key, level in pairs(emptied) do
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', B .. 'wp:' .. level[1], level[2])
    end
  end
  emptied = {}
  for queue, n in pairs(notify) do
    local key = B .. 'n:' .. queue
    local tokens = {}
    for i = 1, math.min(n, MAX_TOKENS) do
      tokens[i] = '1'
    end
    -- RPUSH answers the list's length: trim only when it passed the cap (rarely).
    if redis.call('RPUSH', key, unpack(tokens)) > MAX_TOKENS then
      redis.call('LTRIM', key, 0, MAX_TOKENS - 1)
    end
  end
  notify = {}
end

-- Idempotency keys: k:<key> names the job holding the key while it is
-- waiting or running; a completed holder keeps it for the retention window
-- (a TTL); a failed or cancelled one gives it up.
local function key_release(key, id)
  if key then
    local kk = B .. 'k:' .. key
    if redis.call('GET', kk) == id then
      redis.call('DEL', kk)
    end
  end
end

local function key_retain(key, id, retention_ms)
  if key then
    local kk = B .. 'k:' .. key
    if redis.call('GET', kk) == id then
      if retention_ms >= 1 then
        redis.call('PEXPIRE', kk, retention_ms)
      else
        redis.call('DEL', kk)
      end
    end
  end
end

-- Audit trail: a job's attempt records in the list a:<id> (JSON arrays,
-- oldest first), indexed newest-first across all jobs by the bounded sorted
-- set "audit" (members "<id>:<n>", n the 1-based list position).
local function audit(id, record)
  local n = redis.call('RPUSH', B .. 'a:' .. id, record)
  audits[#audits + 1] = id .. ':' .. n
end

local function audit_flush(max_entries)
  local n = #audits
  if n == 0 then
    return
  end
  local last = redis.call('INCRBY', B .. 'audit:seq', n)
  local t = {}
  for i = 1, n do
    t[#t + 1] = last - n + i
    t[#t + 1] = audits[i]
  end
  chunked('ZADD', B .. 'audit', t)
  local excess = redis.call('ZCARD', B .. 'audit') - max_entries
  if excess > 0 then
    redis.call('ZREMRANGEBYRANK', B .. 'audit', 0, excess - 1)
  end
  audits = {}
end

local function fmt(x)
  return string.format('%.17g', x)
end

-- Remove a job and everything that points at it. f = {state, queue, priority, key}.
local function delete_job(id, f)
  local state, queue = f[1], f[2]
  if state == 'pending' or state == 'retry' then
    wait_remove(queue, f[3], id)
  elseif state == 'processing' then
    zrem(B .. 'leases', id)
  end
  index_remove(state, queue, id)
  key_release(f[4], id)
  local ak = B .. 'a:' .. id
  for i = 1, redis.call('LLEN', ak) do
    zrem(B .. 'audit', id .. ':' .. i)
  end
  redis.call('DEL', B .. 'j:' .. id, ak)
end

-- A grouped job's fair rank (backends/flow.py): after its group's last, never behind the
-- queue's clock. The queue becomes managed first; jobs this run already put in waiting
-- are flushed so that manage() copies them into the fair sets too.
local function group_rank(queue, group)
  if not managed(queue) then
    flush()
    manage(queue)
  end
  local clock = tonumber(redis.call('HGET', B .. 'qs:' .. queue, 'clock') or '0')
  local last = tonumber(redis.call('HGET', B .. 'gr:' .. queue, group) or '0')
  local rank = math.max(last, clock) + 1
  redis.call('HSET', B .. 'gr:' .. queue, group, rank)
  return rank
end

-- A job of the maintenance services (a schedule tick, an alert notification), due now,
-- stored the way enqueue.lua stores one: a group gets its fair rank, and wait_add keeps
-- the fair sets of a managed queue, so flow control claims and counts it like any job.
-- meta = "id|task|queue|priority|max_attempts"; group ('' = none); extra = more
-- {field, value, ...} for its hash.
local function store_job(meta, payload, on_complete, group, now_s, extra)
  local id, task, queue, priority, max_attempts = string.match(meta, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
  local fields = {
    'task', task, 'queue', queue, 'state', 'pending', 'payload', payload, 'priority', priority,
    'run_at', now_s, 'created_at', now_s, 'attempt', '0', 'max_attempts', max_attempts,
  }
  if on_complete ~= '' then
    fields[#fields + 1] = 'on_complete'
    fields[#fields + 1] = on_complete
  end
  if group ~= '' then
    fields[#fields + 1] = 'group_key'
    fields[#fields + 1] = group
    fields[#fields + 1] = 'fair_rank'
    fields[#fields + 1] = group_rank(queue, group)
  end
  for i = 1, #extra do
    fields[#fields + 1] = extra[i]
  end
  redis.call('HSET', B .. 'j:' .. id, unpack(fields))
  wait_add(queue, priority, now_s, id)
  index_add('pending', queue, now_s, id)
  redis.call('SADD', B .. 'queues', queue)
  return id
end

-- (end of lib.lua)
