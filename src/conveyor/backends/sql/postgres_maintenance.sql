-- Conveyor's PostgreSQL queries for schedules, failure alerts and the failure count the
-- alerter reads (tables from migration_006 in postgres.sql). {schema} and {channel} are
-- filled in once per backend as in postgres.sql; every value is a bound parameter.

-- name: schedule_save
-- A changed timing starts over from the spec's first tick; an unchanged one keeps its place
-- (a deploy re-saving the schedules of its code never skips or repeats a tick). Paused and
-- the last run are run-time state and stay.
INSERT INTO {schema}.schedules AS s
    (name, task, cron, every, tz, payload, queue, missed, next_run_at)
VALUES
    (%(name)s, %(task)s, %(cron)s, %(every)s, %(tz)s, %(payload)s, %(queue)s, %(missed)s,
     to_timestamp(%(next_run_at)s))
ON CONFLICT (name) DO UPDATE SET
    task = EXCLUDED.task, payload = EXCLUDED.payload, queue = EXCLUDED.queue,
    missed = EXCLUDED.missed, cron = EXCLUDED.cron, every = EXCLUDED.every, tz = EXCLUDED.tz,
    next_run_at = CASE
        WHEN (s.cron, s.every, s.tz) IS NOT DISTINCT FROM (EXCLUDED.cron, EXCLUDED.every, EXCLUDED.tz)
        THEN s.next_run_at ELSE EXCLUDED.next_run_at END

-- name: schedule_list
SELECT s.name, s.task, s.cron, s.every, s.tz, s.payload, s.queue, s.missed, s.paused,
       extract(epoch FROM s.next_run_at)::float8, extract(epoch FROM s.last_run_at)::float8,
       s.last_job_id
FROM {schema}.schedules s ORDER BY s.name

-- name: schedule_delete
DELETE FROM {schema}.schedules s WHERE s.name = ANY(%(names)s::text[])

-- name: schedule_pause
UPDATE {schema}.schedules s
SET paused = %(paused)s,
    next_run_at = coalesce(to_timestamp(%(next_run_at)s::float8), s.next_run_at)
WHERE s.name = ANY(%(names)s::text[])

-- name: schedule_advance
-- The compare-and-set that makes a tick one job: only the transaction that still sees the old
-- next_run_at moves it on (a concurrent one waits for the row lock, then finds it moved) and
-- stores its jobs before it commits.
UPDATE {schema}.schedules s SET next_run_at = to_timestamp(%(next)s)
WHERE s.name = %(name)s AND s.next_run_at = to_timestamp(%(expected)s) AND NOT s.paused
RETURNING s.name

-- name: schedule_lock
SELECT s.name FROM {schema}.schedules s WHERE s.name = %(name)s FOR UPDATE

-- name: schedule_ran
UPDATE {schema}.schedules s
SET last_run_at = to_timestamp(%(last_run_at)s), last_job_id = %(last_job_id)s
WHERE s.name = %(name)s

-- name: insert_jobs
-- Jobs of the maintenance services (schedule ticks, alert notifications), due now, with the
-- schedule they belong to; one NOTIFY per queue, delivered at commit.
-- A grouped job takes its fair rank as insert_jobs in postgres.sql gives it (flow control).
WITH inserted AS (
    INSERT INTO {schema}.jobs
        (id, task, queue, state, payload, priority, run_at, created_at, max_attempts, on_complete,
         group_key, fair_rank, schedule, scheduled_for)
    SELECT t.id, t.task, t.queue, 'pending', t.payload, t.priority, statement_timestamp(),
           statement_timestamp(), t.max_attempts, t.on_complete, t.group_key,
           CASE WHEN t.group_key IS NULL THEN 0 ELSE {schema}.group_rank(t.queue, t.group_key) END,
           t.schedule, to_timestamp(t.scheduled_for)
    FROM unnest(%(ids)s::text[], %(tasks)s::text[], %(queues)s::text[], %(payloads)s::text[],
                %(priorities)s::integer[], %(max_attempts)s::integer[], %(on_completes)s::text[],
                %(groups)s::text[], %(schedules)s::text[], %(scheduled_fors)s::float8[])
         AS t(id, task, queue, payload, priority, max_attempts, on_complete, group_key, schedule,
              scheduled_for)
    RETURNING queue
)
SELECT count(pg_notify({channel}, d.queue)) FROM (SELECT DISTINCT queue FROM inserted) AS d

-- name: alert_save
INSERT INTO {schema}.alerts AS a (name, url, threshold, window_seconds, queue)
VALUES (%(name)s, %(url)s, %(threshold)s, %(window)s, %(queue)s)
ON CONFLICT (name) DO UPDATE SET
    url = EXCLUDED.url, threshold = EXCLUDED.threshold, window_seconds = EXCLUDED.window_seconds,
    queue = EXCLUDED.queue

-- name: alert_list
SELECT a.name, a.url, a.threshold, a.window_seconds, a.queue, extract(epoch FROM a.last_fired_at)::float8
FROM {schema}.alerts a ORDER BY a.name

-- name: alert_delete
DELETE FROM {schema}.alerts a WHERE a.name = ANY(%(names)s::text[])

-- name: alert_stamp
-- At most once per window: only a transaction that finds the alert quiet since the window
-- began stamps it, and stores its notification job before it commits.
UPDATE {schema}.alerts a SET last_fired_at = to_timestamp(%(fired_at)s)
WHERE a.name = %(name)s
  AND (a.last_fired_at IS NULL OR a.last_fired_at <= to_timestamp(%(quiet_since)s))
RETURNING a.name

-- name: failures_since
-- Along jobs_finished (state, finished_at): the failures of the window, never the whole
-- failure table; the newest ids ride along for the notification.
WITH recent AS (
    SELECT j.id, j.finished_at
    FROM {schema}.jobs j
    WHERE j.state = 'failed' AND j.finished_at >= to_timestamp(%(since)s)
      AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
)
SELECT (SELECT count(*) FROM recent),
       ARRAY(SELECT r.id FROM recent r ORDER BY r.finished_at DESC, r.id DESC LIMIT %(limit)s)
