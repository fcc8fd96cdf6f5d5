"""Structural invariants of a Conveyor namespace on Redis, checked in one atomic script.

``check_redis_invariants(url)`` raises AssertionError listing every violation:
a job is in exactly the indexes of its state (never both waiting and leased,
never in two places), every index member is a live job, per-queue counts add
up to the per-state counts, idempotency keys point at jobs that hold them, and
the audit index points at stored records. The check runs as one Lua script,
so it sees a consistent snapshot even while workers are busy.
"""

# ruff: noqa: E501  (the embedded Lua reads better unwrapped)
from __future__ import annotations

from conveyor.backends.redis import RedisBackend

_CHECK = r"""
local B = KEYS[1]
local problems = {}
local function bad(msg) if #problems < 200 then problems[#problems + 1] = msg end end

local function scan(pattern)
  local keys, cursor = {}, '0'
  repeat
    local r = redis.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
    cursor = r[1]
    for _, k in ipairs(r[2]) do keys[#keys + 1] = k end
  until cursor == '0'
  return keys
end
local function escape(s) return (string.gsub(s, '[%[%]%*%?\\]', '\\%0')) end
local function zmap(key)
  local m, r = {}, redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #r, 2 do m[r[i]] = tonumber(r[i + 1]) end
  return m, #r / 2
end
local function close(a, b) return a ~= nil and b ~= nil and math.abs(a - b) <= 1e-6 * math.max(1, math.abs(a)) end

local STATES = {'pending', 'processing', 'retry', 'completed', 'failed', 'cancelled'}
local VALID, FINAL = {}, {completed = true, failed = true, cancelled = true}
for _, s in ipairs(STATES) do VALID[s] = true end
local E = escape(B)

-- every job hash
local jobs, njobs = {}, 0
for _, k in ipairs(scan(E .. 'j:*')) do
  local id = string.sub(k, #B + 3)
  local h = {}
  local r = redis.call('HGETALL', k)
  for i = 1, #r, 2 do h[r[i]] = r[i + 1] end
  jobs[id] = h
  njobs = njobs + 1
  if not VALID[h.state] then bad('job ' .. id .. ': unknown state ' .. tostring(h.state)) end
  for _, f in ipairs({'task', 'queue', 'payload', 'priority', 'run_at', 'created_at', 'attempt', 'max_attempts'}) do
    if h[f] == nil then bad('job ' .. id .. ': no ' .. f) end
  end
end

-- state indexes: each job in exactly the index of its state and queue
local queues = {}
for _, q in ipairs(redis.call('SMEMBERS', B .. 'queues')) do queues[q] = true end
for id, h in pairs(jobs) do
  if h.queue and not queues[h.queue] then bad('job ' .. id .. ': queue ' .. h.queue .. ' not in queues set') end
end
local total = 0
for _, s in ipairs(STATES) do
  for q in pairs(queues) do
    local mq, nq = zmap(B .. 'sq:' .. q .. ':' .. s)
    total = total + nq
    for id, score in pairs(mq) do
      local h = jobs[id]
      if not h then bad('sq:' .. q .. ':' .. s .. ' holds missing job ' .. id)
      elseif h.state ~= s or h.queue ~= q then bad('sq:' .. q .. ':' .. s .. ' holds ' .. id .. ' (' .. tostring(h.state) .. ' in ' .. tostring(h.queue) .. ')')
      elseif not close(score, tonumber(h.created_at)) then bad('sq score of ' .. id .. ' is not its created_at') end
    end
  end
  for id, h in pairs(jobs) do
    if h.state == s and redis.call('ZSCORE', B .. 'sq:' .. h.queue .. ':' .. s, id) == false then
      bad('job ' .. id .. ' (' .. s .. ') missing from sq:' .. h.queue .. ':' .. s)
    end
  end
  if FINAL[s] then
    for id, h in pairs(jobs) do
      if h.state == s and not h.finished_at then bad('job ' .. id .. ' (' .. s .. ') has no finished_at') end
    end
  end
end
for _, k in ipairs(scan(E .. 's:*')) do bad('unexpected key ' .. k) end
for _, k in ipairs(scan(E .. 'f:*')) do bad('unexpected key ' .. k) end
for _, k in ipairs(scan(E .. 'sq:*')) do
  local q = string.match(string.sub(k, #B + 4), '^(.*):[a-z]+$')
  if not queues[q] then bad('index ' .. k .. ' of an unknown queue') end
end
if total ~= njobs then bad('state indexes hold ' .. total .. ' jobs, hashes ' .. njobs) end
for _, k in ipairs(scan(E .. 'all')) do bad('unexpected key ' .. k) end
for _, k in ipairs(scan(E .. 'qa:*')) do bad('unexpected key ' .. k) end

-- waiting sets: exactly the pending and retry jobs, each once, in its (queue, priority) set
local waiting_seen = {}
for _, k in ipairs(scan(E .. 'w:*')) do
  local rest = string.sub(k, #B + 3)
  local q, p = string.match(rest, '^(.*):(%-?%d+)$')
  for id, score in pairs(zmap(k)) do
    local h = jobs[id]
    if waiting_seen[id] then bad('job ' .. id .. ' waits in two sets') end
    waiting_seen[id] = true
    if not h then bad(k .. ' holds missing job ' .. id)
    elseif h.state ~= 'pending' and h.state ~= 'retry' then bad('job ' .. id .. ' is ' .. h.state .. ' but waits in ' .. k)
    elseif h.queue ~= q or h.priority ~= p then bad('job ' .. id .. ' waits in the wrong set ' .. k)
    elseif not close(score, tonumber(h.run_at)) then bad('job ' .. id .. ' waits with a score other than its run_at') end
  end
  if redis.call('ZSCORE', B .. 'wp:' .. q, p) == false then bad(k .. ' is not listed in wp:' .. q) end
end
for _, k in ipairs(scan(E .. 'wp:*')) do
  local q = string.sub(k, #B + 4)
  for _, p in ipairs(redis.call('ZRANGE', k, 0, -1)) do
    if redis.call('EXISTS', B .. 'w:' .. q .. ':' .. p) == 0 then bad(k .. ' lists empty priority ' .. p) end
  end
end

-- leases: exactly the processing jobs
local leases = zmap(B .. 'leases')
for id, h in pairs(jobs) do
  local waiting = h.state == 'pending' or h.state == 'retry'
  if waiting ~= (waiting_seen[id] == true) then bad('job ' .. id .. ' (' .. h.state .. ') waiting-set membership is wrong') end
  if waiting and leases[id] then bad('job ' .. id .. ' is both waiting and leased') end
  if h.state == 'processing' then
    if not leases[id] then bad('processing job ' .. id .. ' has no lease entry')
    elseif not close(leases[id], tonumber(h.lease_expires_at)) then bad('lease score of ' .. id .. ' is not its lease_expires_at') end
    if not h.lease_token then bad('processing job ' .. id .. ' has no lease token') end
  else
    if leases[id] then bad('job ' .. id .. ' (' .. h.state .. ') is in leases') end
    if h.lease_token or h.lease_expires_at then bad('job ' .. id .. ' (' .. h.state .. ') keeps a lease') end
  end
  local attempt, max_attempts = tonumber(h.attempt), tonumber(h.max_attempts)
  if attempt < 0 then bad('job ' .. id .. ' has attempt ' .. attempt) end
  if h.state == 'processing' and attempt < 1 then bad('processing job ' .. id .. ' has attempt ' .. attempt) end
end
for id in pairs(leases) do if not jobs[id] then bad('leases holds missing job ' .. id) end end

-- idempotency keys (strict: no job was superseded by a replace-mode enqueue while it ran,
-- so the one waiting job of a key holds it)
local waiting_by_key = {}
for id, h in pairs(jobs) do
  if ARGV[1] == '1' and h.key and (h.state == 'pending' or h.state == 'retry') then
    if waiting_by_key[h.key] then bad('two waiting jobs hold key ' .. h.key) end
    waiting_by_key[h.key] = id
    if redis.call('GET', B .. 'k:' .. h.key) ~= id then bad('waiting job ' .. id .. ' does not hold its key') end
  end
end
for _, k in ipairs(scan(E .. 'k:*')) do
  local key, holder = string.sub(k, #B + 3), redis.call('GET', k)
  local h = jobs[holder]
  if not h then bad('key ' .. key .. ' names missing job ' .. tostring(holder))
  elseif h.key ~= key then bad('key ' .. key .. ' names job ' .. holder .. ' with key ' .. tostring(h.key))
  elseif h.state == 'failed' or h.state == 'cancelled' then bad('key ' .. key .. ' still held by ' .. h.state .. ' job ' .. holder) end
end

-- audit trail
for _, m in ipairs(redis.call('ZRANGE', B .. 'audit', 0, -1)) do
  local id, n = string.match(m, '^(.*):(%d+)$')
  if not jobs[id] then bad('audit index names missing job ' .. m)
  elseif redis.call('LLEN', B .. 'a:' .. id) < tonumber(n) then bad('audit index names missing record ' .. m) end
end
for _, k in ipairs(scan(E .. 'a:*')) do
  if not jobs[string.sub(k, #B + 3)] then bad('attempt records of missing job ' .. k) end
end
for _, k in ipairs(scan(E .. 'n:*')) do
  if redis.call('LLEN', k) > 16 then bad('wake-up list ' .. k .. ' is unbounded') end
end
return {njobs, problems}
"""


def check_redis_invariants(url: str, *, strict_keys: bool = False) -> int:
    """Assert every structural invariant of the namespace at ``url``; returns the number of jobs.

    ``strict_keys``: also require that each key's one waiting job holds it, which is
    true unless a replace-mode enqueue superseded a running holder that later went
    back to waiting (then both wait and the newer one holds the key).
    """
    backend = RedisBackend(url)
    try:
        njobs, problems = backend.clients.retrying.eval(_CHECK, 1, backend.base, "1" if strict_keys else "0")
    finally:
        backend.close()
    if problems:
        listing = "\n  ".join(problems[:50])
        raise AssertionError(f"{len(problems)} Redis invariant violation(s) in {url}:\n  {listing}")
    return int(njobs)
