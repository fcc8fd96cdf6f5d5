-- Conveyor's SQLite queries for schedules, failure alerts and the failure count the
-- alerter reads (the tables are created by migration_005 in sqlite.sql). Times are POSIX
-- seconds; values are bound.

-- name: schedule_save
-- A changed timing starts over from the spec's first tick; an unchanged one keeps its place
-- (a deploy re-saving the schedules of its code never skips or repeats a tick). Paused and
-- the last run are run-time state and stay.
INSERT INTO conveyor_schedules
    (name, task, cron, every, tz, payload, queue, missed, paused, next_run_at)
VALUES
    (:name, :task, :cron, :every, :tz, :payload, :queue, :missed, 0, :next_run_at)
ON CONFLICT (name) DO UPDATE SET
    task = excluded.task, payload = excluded.payload, queue = excluded.queue,
    missed = excluded.missed,
    next_run_at = CASE
        WHEN cron IS excluded.cron AND every IS excluded.every AND tz IS excluded.tz THEN next_run_at
        ELSE excluded.next_run_at END,
    cron = excluded.cron, every = excluded.every, tz = excluded.tz

-- name: schedule_list
SELECT name, task, cron, every, tz, payload, queue, missed, paused, next_run_at, last_run_at,
       last_job_id
FROM conveyor_schedules ORDER BY name

-- name: schedule_delete
DELETE FROM conveyor_schedules WHERE name = :name

-- name: schedule_pause
UPDATE conveyor_schedules
SET paused = :paused, next_run_at = coalesce(:next_run_at, next_run_at)
WHERE name = :name

-- name: schedule_advance
-- The compare-and-set that makes a tick one job: only the run that still sees the old
-- next_run_at moves it on (and stores its jobs in the same transaction).
UPDATE conveyor_schedules SET next_run_at = :next
WHERE name = :name AND next_run_at = :expected AND paused = 0

-- name: schedule_exists
SELECT 1 FROM conveyor_schedules WHERE name = :name

-- name: schedule_ran
UPDATE conveyor_schedules SET last_run_at = :last_run_at, last_job_id = :last_job_id
WHERE name = :name

-- name: insert_scheduled_job
-- The columns of insert_job in sqlite.sql (with the fair rank flow control gives a grouped
-- job), plus the schedule and its tick.
INSERT INTO conveyor_jobs
    (id, task, queue, state, payload, priority, run_at, created_at, max_attempts, on_complete,
     group_key, fair_rank, schedule, scheduled_for)
VALUES
    (:id, :task, :queue, 'pending', :payload, :priority, :run_at, :now, :max_attempts, :on_complete,
     :group_key, :fair_rank, :schedule, :scheduled_for)

-- name: alert_save
INSERT INTO conveyor_alerts (name, url, threshold, window_seconds, queue)
VALUES (:name, :url, :threshold, :window, :queue)
ON CONFLICT (name) DO UPDATE SET
    url = excluded.url, threshold = excluded.threshold, window_seconds = excluded.window_seconds,
    queue = excluded.queue

-- name: alert_list
SELECT name, url, threshold, window_seconds, queue, last_fired_at FROM conveyor_alerts ORDER BY name

-- name: alert_delete
DELETE FROM conveyor_alerts WHERE name = :name

-- name: alert_stamp
-- At most once per window: only a run that finds the alert quiet since the window began
-- stamps it (and stores its notification job in the same transaction).
UPDATE conveyor_alerts SET last_fired_at = :fired_at
WHERE name = :name AND (last_fired_at IS NULL OR last_fired_at <= :quiet_since)

-- name: failures_count
-- Along the (state, finished_at) index: the failures of the window, not the failure table.
SELECT count(*) FROM conveyor_jobs
WHERE state = 'failed' AND finished_at >= :since AND (:queue IS NULL OR queue = :queue)

-- name: failures_newest
SELECT id FROM conveyor_jobs
WHERE state = 'failed' AND finished_at >= :since AND (:queue IS NULL OR queue = :queue)
ORDER BY finished_at DESC, id DESC
LIMIT :limit
