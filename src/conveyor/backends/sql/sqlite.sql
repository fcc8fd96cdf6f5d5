-- Conveyor's SQLite queries. Times are POSIX seconds (REAL) from the one clock
-- of the machine the database file lives on. Named blocks; values are bound.

-- name: migration_001
CREATE TABLE IF NOT EXISTS conveyor_jobs (
    id               TEXT PRIMARY KEY,
    task             TEXT NOT NULL,
    queue            TEXT NOT NULL,
    state            TEXT NOT NULL,
    payload          TEXT NOT NULL,
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           REAL NOT NULL,
    created_at       REAL NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    key              TEXT,
    result           TEXT,
    error            TEXT,
    traceback        TEXT,
    lease_token      TEXT,
    lease_expires_at REAL,
    worker           TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    on_complete      TEXT
);
-- The claim walks this index in order and stops at LIMIT.
CREATE INDEX IF NOT EXISTS conveyor_jobs_claim
    ON conveyor_jobs (queue, priority DESC, run_at, id) WHERE state IN ('pending', 'retry');
-- The reaper looks only at leased rows.
CREATE INDEX IF NOT EXISTS conveyor_jobs_lease
    ON conveyor_jobs (lease_expires_at) WHERE state = 'processing';
-- Idempotency keys. Not unique: enqueue checks the key inside its write transaction
-- (SQLite serialises writers), and a keyed job may legitimately return to waiting
-- (retry, lost lease, resubmit) while a newer job holds its key; the newest wins.
CREATE INDEX IF NOT EXISTS conveyor_jobs_key ON conveyor_jobs (key) WHERE key IS NOT NULL;
-- Stats, listings by state, purge by age.
CREATE INDEX IF NOT EXISTS conveyor_jobs_state ON conveyor_jobs (state, queue);
CREATE INDEX IF NOT EXISTS conveyor_jobs_finished ON conveyor_jobs (state, finished_at)
    WHERE finished_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS conveyor_attempts (
    id               INTEGER PRIMARY KEY,
    job_id           TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    worker           TEXT,
    started_at       REAL,
    finished_at      REAL,
    outcome          TEXT NOT NULL,
    error            TEXT,
    traceback        TEXT,
    status_code      INTEGER,
    response_excerpt TEXT
);
CREATE INDEX IF NOT EXISTS conveyor_attempts_job ON conveyor_attempts (job_id, id);

-- name: migration_002
-- Resubmit history (the kit's resubmit history rule, backends/kit.py): attempts run before
-- the latest resubmit, and the arguments each attempt ran with.
ALTER TABLE conveyor_jobs ADD COLUMN prior_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conveyor_attempts ADD COLUMN payload TEXT;

-- name: migration_003
-- The operators' action trail: who retried, cancelled or deleted what, and when. Kept
-- apart from the jobs (a deletion's record outlives the job); action_jobs links an
-- action to every job it changed, so a job's page finds bulk actions too.
CREATE TABLE IF NOT EXISTS conveyor_actions (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    actor   TEXT NOT NULL,
    role    TEXT,
    action  TEXT NOT NULL,
    job_id  TEXT,
    count   INTEGER NOT NULL,
    detail  TEXT
);
CREATE TABLE IF NOT EXISTS conveyor_action_jobs (
    action_id INTEGER NOT NULL,
    job_id    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS conveyor_action_jobs_job ON conveyor_action_jobs (job_id, action_id);

-- name: migration_004
-- Observability: a running job's progress (JSON text), the W3C trace context it was
-- enqueued in, the trace id of each attempt, and the registry of live workers.
ALTER TABLE conveyor_jobs ADD COLUMN progress TEXT;
ALTER TABLE conveyor_jobs ADD COLUMN trace_context TEXT;
ALTER TABLE conveyor_attempts ADD COLUMN trace_id TEXT;
CREATE TABLE IF NOT EXISTS conveyor_workers (
    id           TEXT PRIMARY KEY,
    info         TEXT NOT NULL,
    last_seen_at REAL NOT NULL,
    expires_at   REAL NOT NULL
);

-- name: migration_005
-- Flow control (backends/flow.py): a job's group and fair rank, the settings of managed
-- queues with their fair-order clock, each group's last rank, and recorded starts.
ALTER TABLE conveyor_jobs ADD COLUMN group_key TEXT;
ALTER TABLE conveyor_jobs ADD COLUMN fair_rank INTEGER NOT NULL DEFAULT 0;
-- The flow claim walks this index in fair order and stops at its LIMIT.
CREATE INDEX IF NOT EXISTS conveyor_jobs_fair
    ON conveyor_jobs (queue, priority DESC, fair_rank, run_at, id) WHERE state IN ('pending', 'retry');
-- Concurrency limits count processing jobs, per queue and per group.
CREATE INDEX IF NOT EXISTS conveyor_jobs_running
    ON conveyor_jobs (queue, group_key) WHERE state = 'processing';
-- Listings by group and the busiest groups of a queue.
CREATE INDEX IF NOT EXISTS conveyor_jobs_group
    ON conveyor_jobs (queue, group_key, state) WHERE group_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS conveyor_queues (
    name              TEXT PRIMARY KEY,
    concurrency       INTEGER,
    rate_limit        TEXT,
    group_concurrency INTEGER,
    group_rate_limit  TEXT,
    paused            INTEGER NOT NULL DEFAULT 0,
    clock             INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS conveyor_groups (
    queue     TEXT NOT NULL,
    group_key TEXT NOT NULL,
    last_rank INTEGER NOT NULL,
    PRIMARY KEY (queue, group_key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conveyor_starts (
    id         INTEGER PRIMARY KEY,
    queue      TEXT NOT NULL,
    group_key  TEXT,
    started_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS conveyor_starts_group ON conveyor_starts (queue, group_key, started_at);
CREATE INDEX IF NOT EXISTS conveyor_starts_queue ON conveyor_starts (queue, started_at);

-- name: migration_006
-- Schedules, failure alerts, and the schedule tick a job was enqueued for (queries in
-- sqlite_maintenance.sql).
ALTER TABLE conveyor_jobs ADD COLUMN schedule TEXT;
ALTER TABLE conveyor_jobs ADD COLUMN scheduled_for REAL;
CREATE TABLE IF NOT EXISTS conveyor_schedules (
    name        TEXT PRIMARY KEY,
    task        TEXT NOT NULL,
    cron        TEXT,
    every       REAL,
    tz          TEXT NOT NULL,
    payload     TEXT NOT NULL,
    queue       TEXT,
    missed      TEXT NOT NULL,
    paused      INTEGER NOT NULL DEFAULT 0,
    next_run_at REAL NOT NULL,
    last_run_at REAL,
    last_job_id TEXT
);
CREATE TABLE IF NOT EXISTS conveyor_alerts (
    name           TEXT PRIMARY KEY,
    url            TEXT NOT NULL,
    threshold      INTEGER NOT NULL,
    window_seconds REAL NOT NULL,
    queue          TEXT,
    last_fired_at  REAL
);

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS conveyor_schema (version INTEGER NOT NULL)

-- name: schema_version
SELECT max(version) FROM conveyor_schema

-- name: record_version
INSERT INTO conveyor_schema (version) VALUES (:version)

-- name: insert_job
INSERT INTO conveyor_jobs
    (id, task, queue, state, payload, priority, run_at, created_at, max_attempts, key, on_complete,
     group_key, fair_rank, trace_context)
VALUES
    (:id, :task, :queue, 'pending', :payload, :priority, :run_at, :now, :max_attempts, :key, :on_complete,
     :group_key, :fair_rank, :trace_context)

-- name: insert_plain_jobs
-- Bulk insert without keys, positional for speed; the order of _plain_row's fields.
INSERT INTO conveyor_jobs
    (id, task, queue, state, payload, priority, run_at, created_at, max_attempts, on_complete, trace_context)
VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?)

-- name: find_by_key
-- A live job with this key, or one completed within the retention window.
SELECT id, state FROM conveyor_jobs
WHERE key = :key
  AND (state IN ('pending', 'retry', 'processing')
       OR (state = 'completed' AND finished_at >= :completed_since))
ORDER BY CASE WHEN state IN ('pending', 'retry') THEN 0 ELSE 1 END, id DESC
LIMIT 1

-- name: replace_waiting
UPDATE conveyor_jobs
SET payload = :payload, priority = :priority, run_at = :run_at, max_attempts = :max_attempts,
    on_complete = :on_complete, trace_context = :trace_context
WHERE id = :id AND state IN ('pending', 'retry')

-- name: any_due
-- Per queue, on the claim index: a walk in claim order that stops at the first due row.
SELECT 1 FROM conveyor_jobs INDEXED BY conveyor_jobs_claim
WHERE queue = :queue AND state IN ('pending', 'retry') AND run_at <= :now
LIMIT 1

-- name: claim_candidates
-- The first due jobs of one queue in claim order; the caller merges queues.
SELECT id, priority, run_at FROM conveyor_jobs INDEXED BY conveyor_jobs_claim
WHERE queue = :queue AND state IN ('pending', 'retry') AND run_at <= :now
ORDER BY priority DESC, run_at, id
LIMIT :limit

-- name: claim
UPDATE conveyor_jobs
SET state = 'processing', attempt = attempt + 1, lease_token = :token,
    lease_expires_at = :now + :lease, worker = :worker, started_at = :now
WHERE id IN (SELECT value FROM json_each(:ids)) AND +state IN ('pending', 'retry')  -- '+': look up by id, not by state
RETURNING id, task, queue, payload, attempt, max_attempts, priority, key, on_complete,
          created_at, run_at, prior_attempts, group_key, fair_rank, trace_context

-- name: extend_lease
UPDATE conveyor_jobs SET lease_expires_at = :expires
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: cancel_flags
SELECT id FROM conveyor_jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND cancel_requested = 1

-- name: finish_completed
UPDATE conveyor_jobs
SET state = 'completed', result = :result, finished_at = :now, error = NULL, traceback = NULL,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: finish_retry
UPDATE conveyor_jobs
SET state = 'retry', run_at = :now + :delay, error = :error, traceback = :traceback,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: finish_failed
UPDATE conveyor_jobs
SET state = 'failed', finished_at = :now, error = :error, traceback = :traceback,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: finish_cancelled
UPDATE conveyor_jobs
SET state = 'cancelled', finished_at = :now, error = :error, traceback = :traceback,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: finish_released
-- Back in line where it was (run_at unchanged); the attempt did not count.
UPDATE conveyor_jobs
SET state = 'pending', attempt = attempt - 1, lease_token = NULL, lease_expires_at = NULL,
    worker = NULL, started_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: insert_attempt
-- The arguments the attempt ran with come from the job's row (the kit's resubmit history
-- rule): a payload never changes while its job is processing.
INSERT INTO conveyor_attempts
    (job_id, attempt, worker, started_at, finished_at, outcome, error, traceback,
     status_code, response_excerpt, payload, trace_id)
SELECT :job_id, :attempt, :worker, :started_at, :finished_at, :outcome, :error, :traceback,
       :status_code, :response_excerpt, payload, :trace_id
FROM conveyor_jobs WHERE id = :job_id

-- name: expired_leases
-- The caller applies the kit's reap verdict (backends/kit.py) to each row.
SELECT id, attempt, max_attempts, prior_attempts, worker, started_at, lease_token, cancel_requested
FROM conveyor_jobs
WHERE state = 'processing' AND lease_expires_at < :now
LIMIT :limit

-- name: reap_requeue
UPDATE conveyor_jobs
SET state = 'pending', run_at = :now, error = :error, lease_token = NULL,
    lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: reap_fail
UPDATE conveyor_jobs
SET state = :state, finished_at = :now, error = :error, traceback = NULL,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: get_job
SELECT * FROM conveyor_jobs WHERE id = :id

-- name: job_state
SELECT state FROM conveyor_jobs WHERE id = :id

-- name: job_attempts
SELECT * FROM conveyor_attempts WHERE job_id = :id ORDER BY id

-- name: list_jobs
SELECT * FROM conveyor_jobs
WHERE (:status IS NULL OR state = :status)
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:error IS NULL OR instr(error, :error) > 0)  -- plain text, no wildcards (backends/kit.py)
  AND (:group IS NULL OR group_key = :group)
ORDER BY id DESC  -- ids sort by creation time
LIMIT :limit OFFSET :offset

-- name: count_jobs
SELECT count(*) FROM conveyor_jobs
WHERE (:status IS NULL OR state = :status)
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:error IS NULL OR instr(error, :error) > 0)  -- plain text, no wildcards (backends/kit.py)
  AND (:group IS NULL OR group_key = :group)

-- name: stats
SELECT queue, state, count(*) FROM conveyor_jobs GROUP BY queue, state

-- name: oldest_pending
SELECT min(run_at) FROM conveyor_jobs WHERE state = 'pending' AND run_at <= :now

-- name: resubmit
UPDATE conveyor_jobs
SET state = 'pending', prior_attempts = attempt, run_at = :now, payload = coalesce(:payload, payload),
    finished_at = NULL, started_at = NULL, error = NULL, traceback = NULL, result = NULL,
    cancel_requested = 0, worker = NULL, progress = NULL
WHERE id = :id AND state IN ('failed', 'cancelled')

-- name: resubmittable_ids
SELECT id FROM conveyor_jobs
WHERE state IN ('failed', 'cancelled')
  AND (:status IS NULL OR state = :status)
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:error IS NULL OR instr(error, :error) > 0)  -- plain text, no wildcards (backends/kit.py)
  AND (:group IS NULL OR group_key = :group)
ORDER BY created_at, id

-- name: cancel_waiting
UPDATE conveyor_jobs
SET state = 'cancelled', finished_at = :now, error = :error
WHERE id = :id AND state IN ('pending', 'retry')

-- name: cancel_running
UPDATE conveyor_jobs SET cancel_requested = 1 WHERE id = :id AND state = 'processing'

-- name: delete_job
DELETE FROM conveyor_jobs WHERE id = :id AND state <> 'processing'

-- name: delete_attempts
DELETE FROM conveyor_attempts WHERE job_id = :id

-- name: purge
DELETE FROM conveyor_jobs
WHERE id IN (
    SELECT id FROM conveyor_jobs
    WHERE state IN (SELECT value FROM json_each(:states))
      AND finished_at < :before
    LIMIT :limit)
RETURNING id

-- name: audits_all
SELECT * FROM conveyor_attempts ORDER BY id DESC LIMIT :limit OFFSET :offset

-- name: audits_job
SELECT * FROM conveyor_attempts WHERE job_id = :job_id ORDER BY id DESC LIMIT :limit OFFSET :offset

-- name: matching_jobs
-- Every job a bulk delete's filters match, with its state (processing ones are skipped).
SELECT id, state FROM conveyor_jobs
WHERE (:status IS NULL OR state = :status)
  AND (:queue IS NULL OR queue = :queue)
  AND (:task IS NULL OR task = :task)
  AND (:created_after IS NULL OR created_at >= :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:error IS NULL OR instr(error, :error) > 0)
  AND (:group IS NULL OR group_key = :group)

-- name: insert_action
INSERT INTO conveyor_actions (at, actor, role, action, job_id, count, detail)
VALUES (:at, :actor, :role, :action, :job_id, :count, :detail)
RETURNING id

-- name: insert_action_job
INSERT INTO conveyor_action_jobs (action_id, job_id) VALUES (?, ?)

-- name: actions_all
SELECT id, at, actor, role, action, job_id, count, detail FROM conveyor_actions
ORDER BY id DESC LIMIT :limit OFFSET :offset

-- name: actions_job
SELECT x.id, x.at, x.actor, x.role, x.action, x.job_id, x.count, x.detail
FROM conveyor_action_jobs l JOIN conveyor_actions x ON x.id = l.action_id
WHERE l.job_id = :job_id
ORDER BY x.id DESC LIMIT :limit OFFSET :offset

-- ---------------------------------------------------------------------------------------
-- Flow control (backends/flow.py states the rules; sqlite_flow.py applies them)
-- ---------------------------------------------------------------------------------------

-- name: queue_settings
SELECT name, concurrency, rate_limit, group_concurrency, group_rate_limit, paused
FROM conveyor_queues WHERE name IN (SELECT value FROM json_each(:names))

-- name: all_queue_settings
SELECT name, concurrency, rate_limit, group_concurrency, group_rate_limit, paused
FROM conveyor_queues ORDER BY name

-- name: save_queue
INSERT INTO conveyor_queues (name, concurrency, rate_limit, group_concurrency, group_rate_limit, paused)
VALUES (:name, :concurrency, :rate_limit, :group_concurrency, :group_rate_limit, :paused)
ON CONFLICT (name) DO UPDATE SET
    concurrency = excluded.concurrency, rate_limit = excluded.rate_limit,
    group_concurrency = excluded.group_concurrency, group_rate_limit = excluded.group_rate_limit,
    paused = excluded.paused

-- name: ensure_queue
INSERT INTO conveyor_queues (name) VALUES (:queue) ON CONFLICT (name) DO NOTHING

-- name: group_rank
-- The next fair rank of a group: after its last one, never behind the queue's clock.
INSERT INTO conveyor_groups (queue, group_key, last_rank)
VALUES (:queue, :group_key, (SELECT clock FROM conveyor_queues WHERE name = :queue) + 1)
ON CONFLICT (queue, group_key) DO UPDATE SET
    last_rank = max(last_rank, (SELECT clock FROM conveyor_queues WHERE name = :queue)) + 1
RETURNING last_rank

-- name: advance_clock
UPDATE conveyor_queues SET clock = max(clock, :rank) WHERE name = :queue

-- name: queue_running
SELECT count(*) FROM conveyor_jobs INDEXED BY conveyor_jobs_running
WHERE queue = :queue AND state = 'processing'

-- name: queue_started
SELECT count(*) FROM conveyor_starts WHERE queue = :queue AND started_at > :since

-- name: flow_candidates
-- The first due jobs of a managed queue in fair order (priority, fair rank, run_at, id).
SELECT id, priority, run_at, group_key FROM conveyor_jobs INDEXED BY conveyor_jobs_fair
WHERE queue = :queue AND state IN ('pending', 'retry') AND run_at <= :now
ORDER BY priority DESC, fair_rank, run_at, id
LIMIT :limit

-- name: groups_running
SELECT group_key, count(*) FROM conveyor_jobs INDEXED BY conveyor_jobs_running
WHERE queue = :queue AND state = 'processing' AND group_key IN (SELECT value FROM json_each(:groups))
GROUP BY group_key

-- name: groups_started
SELECT group_key, count(*) FROM conveyor_starts
WHERE queue = :queue AND started_at > :since AND group_key IN (SELECT value FROM json_each(:groups))
GROUP BY group_key

-- name: record_start
INSERT INTO conveyor_starts (queue, group_key, started_at) VALUES (:queue, :group_key, :now)

-- name: prune_starts
DELETE FROM conveyor_starts WHERE queue = :queue AND started_at <= :horizon

-- name: busiest_groups
SELECT group_key,
       sum(state IN ('pending', 'retry')) AS waiting, sum(state = 'processing') AS processing
FROM conveyor_jobs INDEXED BY conveyor_jobs_group
WHERE queue = :queue AND group_key IS NOT NULL AND state IN ('pending', 'retry', 'processing')
GROUP BY group_key
ORDER BY processing DESC, waiting DESC, group_key
LIMIT :limit

-- ---------------------------------------------------------------------------------------
-- Observability: the registry of live workers, and progress
-- ---------------------------------------------------------------------------------------

-- name: worker_beat
INSERT INTO conveyor_workers (id, info, last_seen_at, expires_at)
VALUES (:id, :info, :now, :expires)
ON CONFLICT (id) DO UPDATE SET info = excluded.info, last_seen_at = excluded.last_seen_at,
                               expires_at = excluded.expires_at

-- name: worker_remove
DELETE FROM conveyor_workers WHERE id = :id

-- name: workers_forget_expired
DELETE FROM conveyor_workers WHERE expires_at < :now

-- name: workers_live
SELECT info, last_seen_at FROM conveyor_workers WHERE expires_at >= :now ORDER BY id

-- name: job_progress
-- Fenced like every write after a claim: only while the update's lease still holds the job.
UPDATE conveyor_jobs SET progress = :progress
WHERE id = :id AND lease_token = :token AND state = 'processing'

-- name: oldest_pending_by_queue
SELECT queue, min(run_at) FROM conveyor_jobs WHERE state = 'pending' AND run_at <= :now GROUP BY queue

-- name: throughput
-- Jobs that ended completed or failed per minute since the window began, along the
-- (state, finished_at) index: two ranges, never the finished table (backends/throughput.py).
SELECT CAST(finished_at / 60 AS INTEGER) AS minute, state, count(*)
FROM conveyor_jobs INDEXED BY conveyor_jobs_finished
WHERE state IN ('completed', 'failed') AND finished_at >= :since AND (:queue IS NULL OR queue = :queue)
GROUP BY minute, state
