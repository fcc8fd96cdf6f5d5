-- Conveyor's PostgreSQL migrations and queries, as named blocks.
--
-- {schema} is the quoted schema name, {channel} the NOTIFY channel literal that wakes idle
-- workers and {finished_channel} the one that wakes Job.result waiters: all are filled in
-- once per backend with psycopg.sql (Identifier / Literal) from a validated name.
-- Every value travels as a bound %(name)s parameter. Times are timestamptz on the database
-- clock and cross into Python as epoch seconds (float8). Braces that are not placeholders
-- would have to be doubled, so these queries build arrays with ARRAY[...] instead.

-- ---------------------------------------------------------------------------------------
-- Migrations. Each block runs once, in order, in one transaction under an advisory lock;
-- schema_version records which ones a schema has. Never edit a released block: add one.
-- ---------------------------------------------------------------------------------------

-- name: migration_001
-- The job table, its audit trail and the indexes of the hot paths.
CREATE TABLE {schema}.jobs (
    id               text COLLATE "C" PRIMARY KEY,
    task             text COLLATE "C" NOT NULL,
    queue            text COLLATE "C" NOT NULL,
    state            text COLLATE "C" NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'processing', 'retry', 'completed', 'failed', 'cancelled')),
    payload          text NOT NULL,
    priority         integer NOT NULL DEFAULT 0,
    run_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT statement_timestamp(),
    started_at       timestamptz,
    finished_at      timestamptz,
    attempt          integer NOT NULL DEFAULT 0,
    max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
    key              text COLLATE "C",
    result           text,
    error            text,
    traceback        text,
    lease_token      text COLLATE "C",
    lease_expires_at timestamptz,
    worker           text,
    cancel_requested boolean NOT NULL DEFAULT false,
    on_complete      text,
    -- The fence: a lease token exists exactly while the job is processing.
    CONSTRAINT jobs_lease_token_while_processing CHECK ((lease_token IS NOT NULL) = (state = 'processing'))
)
-- Every job is updated two or three times within seconds: vacuum after 2% of the rows are
-- dead instead of 20%, so the claim index stays short.
WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,
      autovacuum_analyze_scale_factor = 0.05);
-- The claim: one btree range per (queue, priority) holding only waiting jobs, so finished
-- rows never enter it however many there are; due jobs come first within a range.
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('pending', 'retry');
-- The reaper: only leased rows, oldest lease first.
CREATE INDEX jobs_lease ON {schema}.jobs (lease_expires_at) WHERE state = 'processing';
-- The jobs of an idempotency key. Not unique: an older job with the key may come back to
-- waiting (a retry, a lost lease, a resubmit) beside a newer one, and both run.
CREATE INDEX jobs_key ON {schema}.jobs (key) WHERE key IS NOT NULL;
-- Admin listings, newest first by a backward scan. Ascending, because new rows then land on
-- the rightmost leaf, which btree inserts into cheaply; a DESC index would split its leftmost
-- page over and over. A listing filtered by state finds its rows through the index of that
-- state (claim, lease, finished) instead of a (state, created_at) index that every insert,
-- claim and finish would pay for.
CREATE INDEX jobs_created ON {schema}.jobs (created_at, id);
-- Finished jobs: purge by age (a range per state), listings by state, and the counts of the
-- stats by an index-only scan (queue rides along) instead of a pass over the table.
CREATE INDEX jobs_finished ON {schema}.jobs (state, finished_at) INCLUDE (queue)
    WHERE state IN ('completed', 'failed', 'cancelled');

CREATE TABLE {schema}.attempts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id           text COLLATE "C" NOT NULL,
    attempt          integer NOT NULL,
    worker           text,
    started_at       timestamptz,
    finished_at      timestamptz,
    outcome          text NOT NULL,
    error            text,
    traceback        text,
    status_code      integer,
    response_excerpt text
);
CREATE INDEX attempts_job ON {schema}.attempts (job_id, id);

-- One row per idempotency key in use, whose primary key holds across machines: every enqueue
-- of a key upserts (so locks) its row first, so concurrent enqueues of one key take turns and
-- the later ones find the earlier one's job. Purge removes the rows of keys with no job left.
CREATE TABLE {schema}.keys (
    key        text COLLATE "C" PRIMARY KEY,
    touched_at timestamptz NOT NULL
);

-- name: migration_002
-- The SQL-level API: enqueue from a trigger or any SQL client, and the keyed enqueue the
-- Python client uses. Both notify waiting workers (who claim a due job, or learn when the
-- next one falls due); the notification is delivered when the enclosing transaction commits,
-- never if it rolls back.
CREATE FUNCTION {schema}.enqueue_job(
    p_id text, p_task text, p_queue text, p_payload text, p_priority integer,
    p_run_at timestamptz, p_max_attempts integer, p_key text, p_key_mode text,
    p_on_complete text, p_key_retention interval
) RETURNS TABLE (id text, state text, created boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    found_id text;
    found_state text;
BEGIN
    IF p_key IS NOT NULL THEN
        -- Serialise the enqueues of this key across sessions and machines: the upsert locks
        -- the key's row until our transaction ends, so the look-up below sees the job of any
        -- concurrent enqueue of the key, which committed before we got the lock. (In
        -- REPEATABLE READ such a concurrent enqueue is a serialization failure instead.)
        INSERT INTO {schema}.keys AS k (key, touched_at) VALUES (p_key, statement_timestamp())
        ON CONFLICT (key) DO UPDATE SET touched_at = EXCLUDED.touched_at;
        -- The job that answers for the key: the newest waiting one, else the newest running
        -- one or one completed within the retention window.
        SELECT j.id, j.state INTO found_id, found_state
        FROM {schema}.jobs j
        WHERE j.key = p_key
          AND (j.state IN ('pending', 'retry', 'processing')
               OR (j.state = 'completed' AND j.finished_at >= statement_timestamp() - p_key_retention))
        ORDER BY (j.state IN ('pending', 'retry')) DESC, j.id DESC
        LIMIT 1;
        IF found_id IS NOT NULL THEN
            IF p_key_mode = 'keep' THEN
                RETURN QUERY SELECT found_id, found_state, false;
                RETURN;
            END IF;
            IF found_state IN ('pending', 'retry') THEN
                UPDATE {schema}.jobs j
                SET payload = p_payload, priority = p_priority, run_at = p_run_at,
                    max_attempts = p_max_attempts, on_complete = p_on_complete
                WHERE j.id = found_id AND j.state IN ('pending', 'retry');
                IF FOUND THEN
                    PERFORM pg_notify({channel}, p_queue);
                    RETURN QUERY SELECT found_id, found_state, false;
                    RETURN;
                END IF;
                -- claimed since we looked (claims do not take the key's lock): now running.
            END IF;
            -- replace mode with a running or finished holder: the newest arguments run next.
        END IF;
    END IF;
    INSERT INTO {schema}.jobs
        (id, task, queue, state, payload, priority, run_at, created_at, max_attempts, key, on_complete)
    VALUES
        (p_id, p_task, p_queue, 'pending', p_payload, p_priority, p_run_at, statement_timestamp(),
         p_max_attempts, p_key, p_on_complete);
    PERFORM pg_notify({channel}, p_queue);
    RETURN QUERY SELECT p_id, 'pending'::text, true;
END
$$;

-- Many jobs in input order, in one call (one round trip for a batch with keys).
CREATE FUNCTION {schema}.enqueue_jobs(
    p_ids text[], p_tasks text[], p_queues text[], p_payloads text[], p_priorities integer[],
    p_run_ats double precision[], p_delays double precision[], p_max_attempts integer[],
    p_keys text[], p_key_modes text[], p_on_completes text[], p_key_retention double precision
) RETURNS TABLE (id text, state text, created boolean)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        RETURN QUERY SELECT * FROM {schema}.enqueue_job(
            p_ids[i], p_tasks[i], p_queues[i], p_payloads[i], p_priorities[i],
            coalesce(to_timestamp(p_run_ats[i]), statement_timestamp() + p_delays[i] * interval '1 second'),
            p_max_attempts[i], p_keys[i], p_key_modes[i], p_on_completes[i],
            p_key_retention * interval '1 second');
    END LOOP;
END
$$;

-- The public entry point for triggers and SQL clients; returns the job id (the existing
-- job's id when the key matched). Names are checked like the Python API checks them.
CREATE FUNCTION {schema}.enqueue(
    task text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT jsonb_build_object(),
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    delay double precision DEFAULT 0,
    key text DEFAULT NULL,
    max_attempts integer DEFAULT 4,
    key_mode text DEFAULT 'keep',
    on_complete text DEFAULT NULL,
    key_retention double precision DEFAULT 86400
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    job_id text;
BEGIN
    IF task IS NULL OR length(task) > 128 OR task !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'conveyor.enqueue: invalid task name %: expected ^[A-Za-z0-9_.-]{{1,128}}$',
            quote_nullable(task)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF queue IS NULL OR length(queue) > 128 OR queue !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'conveyor.enqueue: invalid queue name %: expected ^[A-Za-z0-9_.-]{{1,128}}$',
            quote_nullable(queue)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF args IS NULL OR jsonb_typeof(args) <> 'array' THEN
        RAISE EXCEPTION 'conveyor.enqueue: args must be a JSON array, got %', coalesce(args::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kwargs IS NULL OR jsonb_typeof(kwargs) <> 'object' THEN
        RAISE EXCEPTION 'conveyor.enqueue: kwargs must be a JSON object, got %',
            coalesce(kwargs::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE EXCEPTION 'conveyor.enqueue: max_attempts must be >= 1, got %',
            coalesce(max_attempts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF delay IS NULL OR delay < 0 OR delay = 'Infinity' OR delay = 'NaN' THEN
        RAISE EXCEPTION 'conveyor.enqueue: delay must be finite seconds >= 0, got %',
            coalesce(delay::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF priority IS NULL THEN
        RAISE EXCEPTION 'conveyor.enqueue: priority must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF key IS NOT NULL AND (length(key) < 1 OR length(key) > 512) THEN
        RAISE EXCEPTION 'conveyor.enqueue: key must be 1 to 512 characters, got %', length(key)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF key_mode IS NULL OR key_mode NOT IN ('keep', 'replace') THEN
        RAISE EXCEPTION 'conveyor.enqueue: key_mode must be keep or replace, got %', quote_nullable(key_mode)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_complete IS NOT NULL AND on_complete !~ '^https?://[^/?#]+' THEN
        RAISE EXCEPTION 'conveyor.enqueue: on_complete must be an absolute http(s) URL, got %', on_complete
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Time-ordered like the Python client's ids: 48-bit milliseconds, then 80 random bits.
    job_id := lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
              || left(replace(gen_random_uuid()::text, '-', ''), 20);
    SELECT e.id INTO job_id
    FROM {schema}.enqueue_job(
        job_id, task, queue, jsonb_build_object('args', args, 'kwargs', kwargs)::text, priority,
        statement_timestamp() + delay * interval '1 second', max_attempts, key, key_mode,
        on_complete, key_retention * interval '1 second') AS e;
    RETURN job_id;
END
$$;

-- name: migration_003
-- Resubmit history (the kit's resubmit history rule, backends/kit.py): attempts run before
-- the latest resubmit, and the arguments each attempt ran with.
ALTER TABLE {schema}.jobs ADD COLUMN prior_attempts integer NOT NULL DEFAULT 0;
ALTER TABLE {schema}.attempts ADD COLUMN payload text;

-- name: migration_004
-- The operators' action trail: who retried, cancelled or deleted what, and when. Kept apart
-- from the jobs (a deletion's record outlives the job); action_jobs links an action to every
-- job it changed, so a job's page finds bulk actions too.
CREATE TABLE {schema}.actions (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT statement_timestamp(),
    actor   text NOT NULL,
    role    text,
    action  text NOT NULL,
    job_id  text COLLATE "C",
    count   integer NOT NULL,
    detail  text
);
CREATE TABLE {schema}.action_jobs (
    action_id bigint NOT NULL,
    job_id    text COLLATE "C" NOT NULL
);
CREATE INDEX action_jobs_job ON {schema}.action_jobs (job_id, action_id);

-- name: migration_005
-- Observability: a running job's progress (JSON text), the W3C trace context it was
-- enqueued in, the trace id of each attempt, and the registry of live workers (one row per
-- worker, renewed by its heartbeat; listed while expires_at is ahead of the database clock).
ALTER TABLE {schema}.jobs ADD COLUMN progress text, ADD COLUMN trace_context text;
ALTER TABLE {schema}.attempts ADD COLUMN trace_id text;
CREATE TABLE {schema}.workers (
    id           text COLLATE "C" PRIMARY KEY,
    info         text NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
-- The joint frequencies of (queue, state) that ANALYZE keeps: /metrics estimates the counts
-- of finished jobs on a large table from them instead of counting every row (gauge_estimates).
-- 1000 entries hold every combination of up to 166 queues.
CREATE STATISTICS {schema}.jobs_queue_state (mcv) ON queue, state FROM {schema}.jobs;
ALTER STATISTICS {schema}.jobs_queue_state SET STATISTICS 1000;

-- name: migration_006
-- Flow control (backends/flow.py states the rules): a job's group and fair rank, the settings
-- of managed queues with their fair-order clock, each group's last rank, recorded starts for
-- sliding-window rates, and the flow claim.
ALTER TABLE {schema}.jobs ADD COLUMN group_key text COLLATE "C"
    CONSTRAINT jobs_group_key_length CHECK (length(group_key) BETWEEN 1 AND 200);
ALTER TABLE {schema}.jobs ADD COLUMN fair_rank bigint NOT NULL DEFAULT 0;
-- The flow claim walks a managed queue's waiting jobs in fair order and stops at its LIMIT.
CREATE INDEX jobs_fair ON {schema}.jobs (queue, priority DESC, fair_rank, run_at, id)
    WHERE state IN ('pending', 'retry');
-- Concurrency limits count processing jobs per queue and per group.
CREATE INDEX jobs_running ON {schema}.jobs (queue, group_key) WHERE state = 'processing';
-- Listings by group, and the busiest groups of a queue.
CREATE INDEX jobs_group ON {schema}.jobs (queue, group_key, state) WHERE group_key IS NOT NULL;

CREATE TABLE {schema}.queues (
    name              text COLLATE "C" PRIMARY KEY,
    concurrency       integer CHECK (concurrency >= 1),
    rate_limit        text,
    rate_count        integer CHECK (rate_count >= 1),
    rate_period       float8 CHECK (rate_period > 0),
    group_concurrency integer CHECK (group_concurrency >= 1),
    group_rate_limit  text,
    group_rate_count  integer CHECK (group_rate_count >= 1),
    group_rate_period float8 CHECK (group_rate_period > 0),
    paused            boolean NOT NULL DEFAULT false,
    -- The fair-order clock: the highest fair rank a claim has taken.
    clock             bigint NOT NULL DEFAULT 0
);
CREATE TABLE {schema}.groups (
    queue     text COLLATE "C" NOT NULL,
    group_key text COLLATE "C" NOT NULL,
    last_rank bigint NOT NULL,
    PRIMARY KEY (queue, group_key)
);
CREATE TABLE {schema}.starts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue      text COLLATE "C" NOT NULL,
    group_key  text COLLATE "C",
    started_at timestamptz NOT NULL
);
CREATE INDEX starts_queue ON {schema}.starts (queue, started_at);
CREATE INDEX starts_group ON {schema}.starts (queue, group_key, started_at);

-- The fair rank of a group's next job: after its last one, never behind the queue's clock
-- (the queue becomes managed on its first grouped job).
CREATE FUNCTION {schema}.group_rank(p_queue text, p_group text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_clock bigint;
    v_rank bigint;
BEGIN
    INSERT INTO {schema}.queues AS q (name) VALUES (p_queue) ON CONFLICT (name) DO NOTHING;
    SELECT q.clock INTO v_clock FROM {schema}.queues q WHERE q.name = p_queue;
    INSERT INTO {schema}.groups AS g (queue, group_key, last_rank)
    VALUES (p_queue, p_group, v_clock + 1)
    ON CONFLICT (queue, group_key) DO UPDATE SET last_rank = greatest(g.last_rank, v_clock) + 1
    RETURNING g.last_rank INTO v_rank;
    RETURN v_rank;
END
$$;

-- Give a job just created its group and fair rank (the keyed and SQL enqueue paths).
CREATE FUNCTION {schema}.set_group(p_id text, p_queue text, p_group text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_group IS NOT NULL THEN
        UPDATE {schema}.jobs j SET group_key = p_group, fair_rank = {schema}.group_rank(p_queue, p_group)
        WHERE j.id = p_id AND j.group_key IS NULL AND j.state = 'pending' AND j.attempt = 0;
    END IF;
END
$$;

DROP FUNCTION {schema}.enqueue_jobs(text[], text[], text[], text[], integer[], float8[], float8[],
                                    integer[], text[], text[], text[], float8);
-- Many jobs in input order, in one call, with their groups.
CREATE FUNCTION {schema}.enqueue_jobs(
    p_ids text[], p_tasks text[], p_queues text[], p_payloads text[], p_priorities integer[],
    p_run_ats double precision[], p_delays double precision[], p_max_attempts integer[],
    p_keys text[], p_key_modes text[], p_on_completes text[], p_key_retention double precision,
    p_groups text[]
) RETURNS TABLE (id text, state text, created boolean)
LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        SELECT * INTO r FROM {schema}.enqueue_job(
            p_ids[i], p_tasks[i], p_queues[i], p_payloads[i], p_priorities[i],
            coalesce(to_timestamp(p_run_ats[i]), statement_timestamp() + p_delays[i] * interval '1 second'),
            p_max_attempts[i], p_keys[i], p_key_modes[i], p_on_completes[i],
            p_key_retention * interval '1 second') AS e;
        IF r.created THEN
            PERFORM {schema}.set_group(r.id, p_queues[i], p_groups[i]);
        END IF;
        id := r.id; state := r.state; created := r.created;
        RETURN NEXT;
    END LOOP;
END
$$;

DROP FUNCTION {schema}.enqueue(text, jsonb, jsonb, text, integer, float8, text, integer, text, text, float8);
-- The public entry point, now with the job's group (group_key) for flow control.
CREATE FUNCTION {schema}.enqueue(
    task text,
    args jsonb DEFAULT '[]',
    kwargs jsonb DEFAULT jsonb_build_object(),
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    delay double precision DEFAULT 0,
    key text DEFAULT NULL,
    max_attempts integer DEFAULT 4,
    key_mode text DEFAULT 'keep',
    on_complete text DEFAULT NULL,
    key_retention double precision DEFAULT 86400,
    group_key text DEFAULT NULL
) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    job_id text;
BEGIN
    IF task IS NULL OR length(task) > 128 OR task !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'conveyor.enqueue: invalid task name %: expected ^[A-Za-z0-9_.-]{{1,128}}$',
            quote_nullable(task)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF queue IS NULL OR length(queue) > 128 OR queue !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'conveyor.enqueue: invalid queue name %: expected ^[A-Za-z0-9_.-]{{1,128}}$',
            quote_nullable(queue)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF args IS NULL OR jsonb_typeof(args) <> 'array' THEN
        RAISE EXCEPTION 'conveyor.enqueue: args must be a JSON array, got %', coalesce(args::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF kwargs IS NULL OR jsonb_typeof(kwargs) <> 'object' THEN
        RAISE EXCEPTION 'conveyor.enqueue: kwargs must be a JSON object, got %',
            coalesce(kwargs::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF max_attempts IS NULL OR max_attempts < 1 THEN
        RAISE EXCEPTION 'conveyor.enqueue: max_attempts must be >= 1, got %',
            coalesce(max_attempts::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF delay IS NULL OR delay < 0 OR delay = 'Infinity' OR delay = 'NaN' THEN
        RAISE EXCEPTION 'conveyor.enqueue: delay must be finite seconds >= 0, got %',
            coalesce(delay::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF priority IS NULL THEN
        RAISE EXCEPTION 'conveyor.enqueue: priority must not be NULL'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF key IS NOT NULL AND (length(key) < 1 OR length(key) > 512) THEN
        RAISE EXCEPTION 'conveyor.enqueue: key must be 1 to 512 characters, got %', length(key)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF key_mode IS NULL OR key_mode NOT IN ('keep', 'replace') THEN
        RAISE EXCEPTION 'conveyor.enqueue: key_mode must be keep or replace, got %', quote_nullable(key_mode)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF on_complete IS NOT NULL AND on_complete !~ '^https?://[^/?#]+' THEN
        RAISE EXCEPTION 'conveyor.enqueue: on_complete must be an absolute http(s) URL, got %', on_complete
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF group_key IS NOT NULL AND (length(group_key) < 1 OR length(group_key) > 200) THEN
        RAISE EXCEPTION 'conveyor.enqueue: group_key must be 1 to 200 characters, got %', length(group_key)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Time-ordered like the Python client's ids: 48-bit milliseconds, then 80 random bits.
    job_id := lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
              || left(replace(gen_random_uuid()::text, '-', ''), 20);
    SELECT e.id INTO job_id
    FROM {schema}.enqueue_job(
        job_id, task, queue, jsonb_build_object('args', args, 'kwargs', kwargs)::text, priority,
        statement_timestamp() + delay * interval '1 second', max_attempts, key, key_mode,
        on_complete, key_retention * interval '1 second') AS e;
    PERFORM {schema}.set_group(job_id, queue, group_key);
    RETURN job_id;
END
$$;

-- The flow claim of the managed queues among p_queues (backends/flow.py): each queue's row is
-- locked, so claims of one managed queue take turns and the counts they read are exact; the
-- room left by concurrency and the sliding-window rate is taken by a walk of the queue's
-- waiting jobs in fair order, bounded by its LIMIT, skipping groups that are at their limits.
-- Returns the rows it leased, as the claim returns them.
CREATE FUNCTION {schema}.claim_flow(
    p_queues text[], p_limit integer, p_token text, p_lease double precision, p_worker text
) RETURNS TABLE (
    id text, task text, queue text, payload text, attempt integer, max_attempts integer,
    priority integer, key text, on_complete text, created_at float8, run_at float8,
    prior_attempts integer, group_key text, trace_context text
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    s record;
    c record;
    v_left integer := p_limit;
    v_room integer;
    v_count integer;
    v_group_room integer;
    v_rooms jsonb;
    v_taken integer;
    v_top bigint;
    v_ids text[] := ARRAY[]::text[];
    v_grouped boolean;
BEGIN
    IF p_limit < 1 THEN
        RETURN;
    END IF;
    FOR s IN SELECT q.* FROM {schema}.queues q WHERE q.name = ANY(p_queues) ORDER BY q.name FOR UPDATE LOOP
        EXIT WHEN v_left < 1;
        CONTINUE WHEN s.paused;
        v_room := v_left;
        IF s.concurrency IS NOT NULL THEN
            SELECT count(*) INTO v_count FROM {schema}.jobs j
            WHERE j.queue = s.name AND j.state = 'processing';
            v_room := least(v_room, s.concurrency - v_count);
        END IF;
        IF s.rate_count IS NOT NULL THEN
            SELECT count(*) INTO v_count FROM {schema}.starts t
            WHERE t.queue = s.name AND t.started_at > now() - s.rate_period * interval '1 second';
            v_room := least(v_room, s.rate_count - v_count);
        END IF;
        CONTINUE WHEN v_room < 1;
        v_grouped := s.group_concurrency IS NOT NULL OR s.group_rate_count IS NOT NULL;
        v_rooms := '{{}}'::jsonb;
        v_taken := 0;
        v_top := 0;
        FOR c IN
            SELECT j.id, j.group_key, j.fair_rank FROM {schema}.jobs j
            WHERE j.queue = s.name AND j.state IN ('pending', 'retry') AND j.run_at <= now()
            ORDER BY j.priority DESC, j.fair_rank, j.run_at, j.id
            LIMIT greatest(v_room * 4, 64)
            FOR UPDATE SKIP LOCKED
        LOOP
            EXIT WHEN v_taken >= v_room;
            IF v_grouped AND c.group_key IS NOT NULL THEN
                v_group_room := (v_rooms ->> c.group_key)::integer;
                IF v_group_room IS NULL THEN
                    v_group_room := v_room;
                    IF s.group_concurrency IS NOT NULL THEN
                        SELECT count(*) INTO v_count FROM {schema}.jobs j
                        WHERE j.queue = s.name AND j.group_key = c.group_key AND j.state = 'processing';
                        v_group_room := least(v_group_room, s.group_concurrency - v_count);
                    END IF;
                    IF s.group_rate_count IS NOT NULL THEN
                        SELECT count(*) INTO v_count FROM {schema}.starts t
                        WHERE t.queue = s.name AND t.group_key = c.group_key
                          AND t.started_at > now() - s.group_rate_period * interval '1 second';
                        v_group_room := least(v_group_room, s.group_rate_count - v_count);
                    END IF;
                END IF;
                v_rooms := jsonb_set(v_rooms, ARRAY[c.group_key], to_jsonb(v_group_room - 1));
                CONTINUE WHEN v_group_room < 1;
            END IF;
            v_ids := v_ids || c.id;
            v_taken := v_taken + 1;
            v_top := greatest(v_top, c.fair_rank);
            IF s.rate_count IS NOT NULL OR s.group_rate_count IS NOT NULL THEN
                INSERT INTO {schema}.starts (queue, group_key, started_at) VALUES (s.name, c.group_key, now());
            END IF;
        END LOOP;
        v_left := v_left - v_taken;
        IF v_top > s.clock THEN
            UPDATE {schema}.queues q SET clock = v_top WHERE q.name = s.name;
        END IF;
        IF s.rate_count IS NOT NULL OR s.group_rate_count IS NOT NULL THEN
            DELETE FROM {schema}.starts t WHERE t.queue = s.name
              AND t.started_at <= now() - greatest(coalesce(s.rate_period, 0), coalesce(s.group_rate_period, 0))
                                          * interval '1 second';
        END IF;
    END LOOP;
    IF cardinality(v_ids) > 0 THEN
        RETURN QUERY
        UPDATE {schema}.jobs j
        SET state = 'processing', attempt = j.attempt + 1, lease_token = p_token,
            lease_expires_at = now() + p_lease * interval '1 second', worker = p_worker, started_at = now()
        WHERE j.id = ANY(v_ids)
        RETURNING j.id, j.task, j.queue, j.payload, j.attempt, j.max_attempts, j.priority, j.key,
                  j.on_complete, extract(epoch FROM j.created_at)::float8,
                  extract(epoch FROM j.run_at)::float8, j.prior_attempts, j.group_key,
                  j.trace_context;
    END IF;
END
$$;

-- name: migration_007
-- Schedules, failure alerts, and the schedule tick a job was enqueued for (their queries are
-- in postgres_maintenance.sql).
ALTER TABLE {schema}.jobs ADD COLUMN schedule text, ADD COLUMN scheduled_for timestamptz;
CREATE TABLE {schema}.schedules (
    name        text COLLATE "C" PRIMARY KEY,
    task        text COLLATE "C" NOT NULL,
    cron        text,
    every       float8 CHECK (every > 0),
    tz          text NOT NULL,
    payload     text NOT NULL,
    queue       text COLLATE "C",
    missed      text NOT NULL CHECK (missed IN ('latest', 'skip')),
    paused      boolean NOT NULL DEFAULT false,
    next_run_at timestamptz NOT NULL,
    last_run_at timestamptz,
    last_job_id text,
    CONSTRAINT schedules_one_timing CHECK ((cron IS NULL) <> (every IS NULL))
);
CREATE TABLE {schema}.alerts (
    name           text COLLATE "C" PRIMARY KEY,
    url            text NOT NULL,
    threshold      integer NOT NULL CHECK (threshold >= 1),
    window_seconds float8 NOT NULL CHECK (window_seconds > 0),
    queue          text COLLATE "C",
    last_fired_at  timestamptz
);

-- ---------------------------------------------------------------------------------------
-- Life cycle
-- ---------------------------------------------------------------------------------------

-- name: migrate_lock
-- Serialises migrations of one schema across every machine; released at commit.
SELECT pg_advisory_xact_lock(hashtextextended('conveyor.migrate.' || %(schema)s, 0))

-- name: schema_exists
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s)

-- name: create_schema
CREATE SCHEMA {schema}

-- name: version_table_exists
SELECT EXISTS (
    SELECT 1 FROM pg_catalog.pg_tables WHERE schemaname = %(schema)s AND tablename = 'schema_version'
)

-- name: version_table
CREATE TABLE IF NOT EXISTS {schema}.schema_version (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)

-- name: schema_version
SELECT coalesce(max(version), 0) FROM {schema}.schema_version

-- name: record_version
INSERT INTO {schema}.schema_version (version) VALUES (%(version)s)

-- name: now
SELECT extract(epoch FROM now())::float8

-- ---------------------------------------------------------------------------------------
-- Producers
-- ---------------------------------------------------------------------------------------

-- name: insert_jobs
-- A batch without idempotency keys: one INSERT ... SELECT FROM unnest, and one NOTIFY per
-- queue of the batch (delivered at commit; for a delayed job it lets an idle worker learn the
-- new earliest due time).
WITH inserted AS (
    INSERT INTO {schema}.jobs
        (id, task, queue, state, payload, priority, run_at, created_at, max_attempts, on_complete,
         group_key, fair_rank, trace_context)
    SELECT t.id, t.task, t.queue, 'pending', t.payload, t.priority,
           coalesce(to_timestamp(t.run_at), statement_timestamp() + t.delay * interval '1 second'),
           statement_timestamp(), t.max_attempts, t.on_complete, t.group_key,
           -- fair rank (backends/flow.py): only grouped jobs pay for the group's row
           CASE WHEN t.group_key IS NULL THEN 0 ELSE {schema}.group_rank(t.queue, t.group_key) END,
           t.trace_context
    FROM unnest(%(ids)b::text[], %(tasks)b::text[], %(queues)b::text[], %(payloads)b::text[],
                %(priorities)b::integer[], %(run_ats)b::float8[], %(delays)b::float8[],
                %(max_attempts)b::integer[], %(on_completes)b::text[], %(groups)b::text[],
                %(trace_contexts)b::text[])
         AS t(id, task, queue, payload, priority, run_at, delay, max_attempts, on_complete, group_key,
              trace_context)
)
SELECT count(pg_notify({channel}, q)) FROM unnest(%(notify)b::text[]) AS q

-- name: enqueue_jobs
-- A batch with idempotency keys: settled one by one, in order, by enqueue_job.
SELECT e.id, e.state, e.created
FROM {schema}.enqueue_jobs(
    %(ids)b::text[], %(tasks)b::text[], %(queues)b::text[], %(payloads)b::text[],
    %(priorities)b::integer[], %(run_ats)b::float8[], %(delays)b::float8[], %(max_attempts)b::integer[],
    %(keys)b::text[], %(key_modes)b::text[], %(on_completes)b::text[], %(key_retention)s::float8,
    %(groups)b::text[]) AS e

-- ---------------------------------------------------------------------------------------
-- Workers
--
-- The worker's own writes (claim, lease renewal, outcomes, reaping) set synchronous_commit
-- for their one-statement transaction (set_config(..., true) in the output list: it only has
-- to be set before the commit) to 'off' by default (the worker_commit URL parameter; NULL
-- keeps the session's setting). Losing such a commit in a server crash only makes a job run again, which
-- at-least-once allows: an un-persisted claim leaves the job pending, an un-persisted outcome
-- leaves it leased until the reaper requeues it. Enqueues always commit synchronously.
-- ---------------------------------------------------------------------------------------

-- name: set_trace_contexts
-- The trace context of keyed jobs just created by enqueue_jobs (same transaction).
UPDATE {schema}.jobs j SET trace_context = t.trace_context
FROM unnest(%(ids)b::text[], %(trace_contexts)b::text[]) AS t(id, trace_context)
WHERE j.id = t.id AND t.trace_context IS NOT NULL
RETURNING j.id

-- name: waiting_levels
-- The distinct priorities of the waiting jobs of each queue of the queues array, by a
-- loose index scan on jobs_claim: one probe per level. The probes climb from the lowest
-- priority with min(): each lands on the tail of a range (the newest jobs), never on its
-- head, where the index entries of just-claimed jobs pile up until VACUUM removes them.
-- Spliced into claim and next_due as their first CTE.
levels AS (
    SELECT q.queue,
           (SELECT min(j.priority) FROM {schema}.jobs j
            WHERE j.queue = q.queue AND j.state IN ('pending', 'retry')) AS priority
    FROM unnest(%(queues)b::text[]) AS q(queue)
    UNION ALL
    SELECT l.queue,
           (SELECT min(j.priority) FROM {schema}.jobs j
            WHERE j.queue = l.queue AND j.state IN ('pending', 'retry') AND j.priority > l.priority)
    FROM levels l
    WHERE l.priority IS NOT NULL
)

-- name: claim
-- One statement, in the kit's claim order (backends/kit.py: priority desc, run_at, id).
-- `levels` (waiting_levels) finds the priorities of each queue's waiting jobs, so jobs that are
-- not due yet are never walked through; each (queue, priority) range then yields its due jobs
-- in (run_at, id) order, skipping rows another worker is claiming. The MATERIALIZED CTE is
-- the optimisation fence that keeps the UPDATE from touching more rows than the LIMIT.
-- Managed queues (flow control) are claimed by claim_flow first, within min(limit, start_limit);
-- the plain claim takes the rest of the limit from the unmanaged ones.
WITH RECURSIVE flow AS MATERIALIZED (
    SELECT * FROM {schema}.claim_flow(%(queues)b::text[], %(flow_limit)s, %(token)s, %(lease)s, %(worker)s)
),
{waiting_levels},
candidates AS MATERIALIZED (
    SELECT c.id, c.priority, c.run_at
    FROM levels l
    CROSS JOIN LATERAL (
        SELECT j.id, j.priority, j.run_at
        FROM {schema}.jobs j
        WHERE j.queue = l.queue AND j.priority = l.priority AND j.state IN ('pending', 'retry')
          AND j.run_at <= now()
        ORDER BY j.run_at, j.id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    ) AS c
    WHERE l.priority IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues s WHERE s.name = l.queue)
    ORDER BY c.priority DESC, c.run_at, c.id
    LIMIT %(limit)s - (SELECT count(*) FROM flow)
),
plain AS (
    UPDATE {schema}.jobs j
    SET state = 'processing', attempt = j.attempt + 1, lease_token = %(token)s,
        lease_expires_at = now() + %(lease)s * interval '1 second', worker = %(worker)s, started_at = now()
    WHERE j.id = ANY(ARRAY(SELECT c.id FROM candidates c))
    RETURNING j.id, j.task, j.queue, j.payload, j.attempt, j.max_attempts, j.priority, j.key, j.on_complete,
              extract(epoch FROM j.created_at)::float8, extract(epoch FROM j.run_at)::float8, j.prior_attempts,
              j.group_key, j.trace_context
)
SELECT p.*, set_config('synchronous_commit',
                       coalesce(%(commit)s::text, current_setting('synchronous_commit')), true)
FROM (SELECT * FROM plain UNION ALL SELECT * FROM flow) AS p

-- name: finish_listener_lock
-- Taken (shared, for the session) by a finish listener before it LISTENs: finish notifies
-- only while some session holds it.
SELECT pg_advisory_lock_shared(hashtext('conveyor.finish'), hashtext({finished_channel}))

-- name: next_due
-- Seconds until the earliest waiting job in these queues is due (<= 0: due now; NULL: none),
-- with the same loose index scan as the claim (waiting_levels), and whether one of them has
-- flow-control settings (a due job there may be held back by its limits).
WITH RECURSIVE {waiting_levels}
SELECT extract(epoch FROM min(n.run_at) - now())::float8,
       EXISTS (SELECT 1 FROM {schema}.queues s WHERE s.name = ANY(%(queues)b::text[]))
FROM levels l
CROSS JOIN LATERAL (
    SELECT j.run_at FROM {schema}.jobs j
    WHERE j.queue = l.queue AND j.priority = l.priority AND j.state IN ('pending', 'retry')
    ORDER BY j.run_at
    LIMIT 1
) AS n
WHERE l.priority IS NOT NULL

-- name: extend_leases
-- Driven by the input: one primary-key lookup per lease. A lease token exists exactly while
-- a job is processing (a CHECK constraint), so matching it is the whole fence.
UPDATE {schema}.jobs j
SET lease_expires_at = now() + %(lease)s * interval '1 second'
FROM unnest(%(ids)b::text[], %(tokens)b::text[]) AS l(id, token)
WHERE j.id = l.id AND j.lease_token = l.token
RETURNING j.id, j.cancel_requested,
          set_config('synchronous_commit',
                     coalesce(%(commit)s::text, current_setting('synchronous_commit')), true)

-- name: finish
-- Every outcome of a batch in one statement: one UPDATE per kind, each driven by that kind's
-- parallel arrays (one primary-key lookup per outcome, ids unique within the statement) and
-- fenced by the lease token; one INSERT of the audit rows of the outcomes that applied, from
-- what the UPDATEs return (with the job's payload: the arguments the attempt ran with, the
-- kit's resubmit history rule); a NOTIFY for the queues of released and retried jobs (idle
-- workers claim them, or learn when the retry falls due); and, for the jobs that reached a
-- final state, one NOTIFY on the finish channel carrying their ids (the kit's finish wake-up
-- rule); past NOTIFY's 8000-byte payload limit the notice says '*' instead.
WITH completed AS (
    UPDATE {schema}.jobs j
    SET state = 'completed', result = o.value, finished_at = now(), error = NULL, traceback = NULL,
        lease_token = NULL, lease_expires_at = NULL
    FROM unnest(%(completed_ids)b::text[], %(completed_tokens)b::text[], %(completed_attempts)b::integer[],
                %(completed_workers)b::text[], %(completed_started)b::float8[],
                %(completed_finished)b::float8[], %(completed_errors)b::text[],
                %(completed_tracebacks)b::text[], %(completed_status_codes)b::integer[],
                %(completed_excerpts)b::text[], %(completed_results)b::text[])
         AS o(id, token, attempt, worker, started_at, finished_at, error, traceback, status_code,
              response_excerpt, value)
    WHERE j.id = o.id AND j.lease_token = o.token
    RETURNING j.id, j.queue, j.run_at, o.attempt, o.worker, o.started_at, o.finished_at, o.error, o.traceback,
              o.status_code, o.response_excerpt, j.payload
),
retried AS (
    UPDATE {schema}.jobs j
    SET state = 'retry', run_at = now() + o.value * interval '1 second', error = o.error,
        traceback = o.traceback, lease_token = NULL, lease_expires_at = NULL
    FROM unnest(%(retry_ids)b::text[], %(retry_tokens)b::text[], %(retry_attempts)b::integer[],
                %(retry_workers)b::text[], %(retry_started)b::float8[], %(retry_finished)b::float8[],
                %(retry_errors)b::text[], %(retry_tracebacks)b::text[], %(retry_status_codes)b::integer[],
                %(retry_excerpts)b::text[], %(retry_delays)b::float8[])
         AS o(id, token, attempt, worker, started_at, finished_at, error, traceback, status_code,
              response_excerpt, value)
    WHERE j.id = o.id AND j.lease_token = o.token
    RETURNING j.id, j.queue, j.run_at, o.attempt, o.worker, o.started_at, o.finished_at, o.error, o.traceback,
              o.status_code, o.response_excerpt, j.payload
),
failed AS (
    UPDATE {schema}.jobs j
    SET state = 'failed', finished_at = now(), error = o.error, traceback = o.traceback,
        lease_token = NULL, lease_expires_at = NULL
    FROM unnest(%(failed_ids)b::text[], %(failed_tokens)b::text[], %(failed_attempts)b::integer[],
                %(failed_workers)b::text[], %(failed_started)b::float8[], %(failed_finished)b::float8[],
                %(failed_errors)b::text[], %(failed_tracebacks)b::text[], %(failed_status_codes)b::integer[],
                %(failed_excerpts)b::text[])
         AS o(id, token, attempt, worker, started_at, finished_at, error, traceback, status_code,
              response_excerpt)
    WHERE j.id = o.id AND j.lease_token = o.token
    RETURNING j.id, j.queue, j.run_at, o.attempt, o.worker, o.started_at, o.finished_at, o.error, o.traceback,
              o.status_code, o.response_excerpt, j.payload
),
cancelled AS (
    UPDATE {schema}.jobs j
    SET state = 'cancelled', finished_at = now(), error = o.error, traceback = o.traceback,
        lease_token = NULL, lease_expires_at = NULL
    FROM unnest(%(cancelled_ids)b::text[], %(cancelled_tokens)b::text[], %(cancelled_attempts)b::integer[],
                %(cancelled_workers)b::text[], %(cancelled_started)b::float8[],
                %(cancelled_finished)b::float8[], %(cancelled_errors)b::text[],
                %(cancelled_tracebacks)b::text[], %(cancelled_status_codes)b::integer[],
                %(cancelled_excerpts)b::text[])
         AS o(id, token, attempt, worker, started_at, finished_at, error, traceback, status_code,
              response_excerpt)
    WHERE j.id = o.id AND j.lease_token = o.token
    RETURNING j.id, j.queue, j.run_at, o.attempt, o.worker, o.started_at, o.finished_at, o.error, o.traceback,
              o.status_code, o.response_excerpt, j.payload
),
released AS (
    -- Back in line where it was (run_at unchanged); the attempt did not count.
    UPDATE {schema}.jobs j
    SET state = 'pending', attempt = j.attempt - 1, lease_token = NULL, lease_expires_at = NULL,
        worker = NULL, started_at = NULL
    FROM unnest(%(released_ids)b::text[], %(released_tokens)b::text[], %(released_attempts)b::integer[],
                %(released_workers)b::text[], %(released_started)b::float8[], %(released_finished)b::float8[],
                %(released_errors)b::text[], %(released_tracebacks)b::text[],
                %(released_status_codes)b::integer[], %(released_excerpts)b::text[])
         AS o(id, token, attempt, worker, started_at, finished_at, error, traceback, status_code,
              response_excerpt)
    WHERE j.id = o.id AND j.lease_token = o.token
    RETURNING j.id, j.queue, j.run_at, o.attempt, o.worker, o.started_at, o.finished_at, o.error, o.traceback,
              o.status_code, o.response_excerpt, j.payload
),
applied AS (
    SELECT 'completed' AS kind, * FROM completed
    UNION ALL SELECT 'retry', * FROM retried
    UNION ALL SELECT 'failed', * FROM failed
    UNION ALL SELECT 'cancelled', * FROM cancelled
    UNION ALL SELECT 'released', * FROM released
),
audited AS (
    INSERT INTO {schema}.attempts
        (job_id, attempt, worker, started_at, finished_at, outcome, error, traceback, status_code,
         response_excerpt, payload, trace_id)
    SELECT a.id, a.attempt, a.worker, to_timestamp(a.started_at), to_timestamp(a.finished_at), a.kind,
           a.error, a.traceback, a.status_code, a.response_excerpt, a.payload, t.trace_id
    FROM applied a
    -- The trace ids of the attempts that ran in a span: one pair of arrays for every kind.
    LEFT JOIN unnest(%(traced_ids)b::text[], %(trace_ids)b::text[]) AS t(id, trace_id) ON t.id = a.id
    WHERE a.started_at IS NOT NULL
),
woken AS (
    SELECT pg_notify({channel}, w.queue)
    FROM (SELECT queue FROM retried UNION SELECT queue FROM released) AS w
),
told AS (
    -- One notice per write. NOTIFY's payload stops at 8000 bytes (about 240 ids): a larger
    -- batch says '*', "something finished", and every waiter of this schema reads again.
    SELECT pg_notify({finished_channel}, CASE WHEN octet_length(f.ids) < 8000 THEN f.ids ELSE '*' END)
    FROM (SELECT string_agg(id, ',') AS ids
          FROM (SELECT id FROM completed UNION ALL SELECT id FROM failed UNION ALL SELECT id FROM cancelled)
               AS finals) AS f
    WHERE f.ids IS NOT NULL
      -- Only when someone listens: every finish listener holds this advisory lock shared
      -- (finish_listener_lock). When our exclusive try succeeds nobody does, and the NOTIFY,
      -- whose commit serialises on a global lock and wakes every listening session of the
      -- database, is skipped; a listener arriving meanwhile waits for our commit, and its
      -- waiters read again once it listens. A failed try only means one NOTIFY too many.
      AND NOT pg_try_advisory_xact_lock(hashtext('conveyor.finish'), hashtext({finished_channel}))
)
SELECT ARRAY(SELECT id FROM applied), (SELECT count(*) FROM woken), (SELECT count(*) FROM told),
       set_config('synchronous_commit',
                  coalesce(%(commit)s::text, current_setting('synchronous_commit')), true)

-- name: reap
-- Lapsed leases, oldest first, skipping rows a worker is writing right now, given the kit's
-- reap verdict (backends/kit.py): cancellation requested -> cancelled; attempts of this
-- submission spent (attempt - prior_attempts >= max_attempts) -> failed as "worker lost";
-- else -> pending, the attempt counted. Each gets its audit row, with the job's arguments.
WITH expired AS MATERIALIZED (
    SELECT j.id
    FROM {schema}.jobs j
    WHERE j.state = 'processing' AND j.lease_expires_at < now()
    ORDER BY j.lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
reaped AS (
    UPDATE {schema}.jobs j
    SET state = CASE WHEN j.cancel_requested THEN 'cancelled'
                     WHEN j.attempt - j.prior_attempts >= j.max_attempts THEN 'failed'
                     ELSE 'pending' END,
        finished_at = CASE WHEN j.cancel_requested OR j.attempt - j.prior_attempts >= j.max_attempts
                           THEN now() ELSE j.finished_at END,
        run_at = CASE WHEN j.cancel_requested OR j.attempt - j.prior_attempts >= j.max_attempts
                      THEN j.run_at ELSE now() END,
        traceback = CASE WHEN j.cancel_requested OR j.attempt - j.prior_attempts >= j.max_attempts
                         THEN NULL ELSE j.traceback END,
        error = %(error)s, lease_token = NULL, lease_expires_at = NULL
    WHERE j.id = ANY(ARRAY(SELECT e.id FROM expired e))
    RETURNING j.id, j.state, j.queue, j.attempt, j.worker, j.started_at, j.payload
),
audited AS (
    INSERT INTO {schema}.attempts (job_id, attempt, worker, started_at, finished_at, outcome, error, payload)
    SELECT r.id, r.attempt, r.worker, r.started_at, now(),
           CASE WHEN r.state = 'cancelled' THEN 'cancelled' ELSE 'lost' END, %(error)s, r.payload
    FROM reaped r
),
woken AS (
    SELECT pg_notify({channel}, d.queue)
    FROM (SELECT DISTINCT queue FROM reaped WHERE state = 'pending') AS d
),
told AS (
    -- Failed and cancelled jobs, one notice on the finish channel as in finish.
    SELECT pg_notify({finished_channel}, CASE WHEN octet_length(f.ids) < 8000 THEN f.ids ELSE '*' END)
    FROM (SELECT string_agg(r.id, ',') AS ids FROM reaped r WHERE r.state <> 'pending') AS f
    WHERE f.ids IS NOT NULL
)
SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'failed'),
       (SELECT count(*) FROM woken), (SELECT count(*) FROM told),
       set_config('synchronous_commit',
                  coalesce(%(commit)s::text, current_setting('synchronous_commit')), true)
FROM reaped

-- ---------------------------------------------------------------------------------------
-- Admin
-- ---------------------------------------------------------------------------------------

-- name: job_columns
j.id, j.task, j.queue, j.state, j.payload, j.attempt, j.max_attempts, j.priority,
extract(epoch FROM j.run_at)::float8, extract(epoch FROM j.created_at)::float8,
extract(epoch FROM j.started_at)::float8, extract(epoch FROM j.finished_at)::float8,
j.result, j.error, j.traceback, j.key, j.worker, extract(epoch FROM j.lease_expires_at)::float8,
j.cancel_requested, j.on_complete, j.prior_attempts, j.group_key, j.schedule,
extract(epoch FROM j.scheduled_for)::float8, j.progress, j.trace_context

-- name: attempt_columns
a.job_id, a.attempt, a.worker, extract(epoch FROM a.started_at)::float8,
extract(epoch FROM a.finished_at)::float8, a.outcome, a.error, a.traceback, a.status_code,
a.response_excerpt, a.payload, a.trace_id

-- name: get_job
SELECT {job_columns} FROM {schema}.jobs j WHERE j.id = %(id)s

-- name: job_attempts
SELECT {attempt_columns} FROM {schema}.attempts a WHERE a.job_id = %(id)s ORDER BY a.id

-- name: job_state
SELECT j.state FROM {schema}.jobs j WHERE j.id = %(id)s

-- name: filter_status
j.state = %(status)s

-- name: filter_queue
j.queue = %(queue)s

-- name: filter_task
j.task = %(task)s

-- name: filter_group
j.group_key = %(group)s

-- name: filter_created_after
j.created_at >= to_timestamp(%(created_after)s)

-- name: filter_created_before
j.created_at < to_timestamp(%(created_before)s)

-- name: filter_error
-- Plain text, no wildcards (backends/kit.py): strpos rather than LIKE, whose wildcards would need escaping.
strpos(j.error, %(error)s) > 0

-- name: list_jobs
SELECT {job_columns} FROM {schema}.jobs j
WHERE {filters}
ORDER BY j.created_at DESC, j.id DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: count_jobs
SELECT count(*) FROM {schema}.jobs j WHERE {filters}

-- name: stats
-- Finished states through the jobs_finished index (an index-only scan once vacuumed); the
-- waiting and running states, which are few, through the claim and lease indexes (one OR
-- arm per partial index, so the planner can combine the two).
SELECT j.queue, j.state, count(*)
FROM {schema}.jobs j
WHERE j.state IN ('completed', 'failed', 'cancelled')
GROUP BY j.queue, j.state
UNION ALL
SELECT j.queue, j.state, count(*)
FROM {schema}.jobs j
WHERE j.state IN ('pending', 'retry') OR j.state = 'processing'
GROUP BY j.queue, j.state

-- name: oldest_pending
SELECT extract(epoch FROM now() - min(j.run_at))::float8
FROM {schema}.jobs j
WHERE j.state = 'pending' AND j.run_at <= now()

-- name: resubmit
WITH resubmitted AS (
    UPDATE {schema}.jobs j
    SET state = 'pending', prior_attempts = j.attempt, run_at = now(),
        payload = coalesce(%(payload)s, j.payload),
        finished_at = NULL, started_at = NULL, error = NULL, traceback = NULL, result = NULL,
        cancel_requested = false, worker = NULL, progress = NULL
    WHERE j.id = %(id)s AND j.state IN ('failed', 'cancelled')
    RETURNING j.queue
)
SELECT count(pg_notify({channel}, r.queue)) FROM resubmitted r

-- name: resubmit_many
-- Every matching failed/cancelled job back to pending (rows being written are skipped).
WITH candidates AS MATERIALIZED (
    SELECT j.id
    FROM {schema}.jobs j
    WHERE j.state IN ('failed', 'cancelled') AND {filters}
    FOR UPDATE SKIP LOCKED
),
resubmitted AS (
    UPDATE {schema}.jobs j
    SET state = 'pending', prior_attempts = j.attempt, run_at = now(),
        payload = coalesce(%(payload)s, j.payload),
        finished_at = NULL, started_at = NULL, error = NULL, traceback = NULL, result = NULL,
        cancel_requested = false, worker = NULL
    FROM candidates c
    WHERE j.id = c.id
    RETURNING j.queue, j.id, j.created_at
),
woken AS (
    SELECT pg_notify({channel}, d.queue) FROM (SELECT DISTINCT queue FROM resubmitted) AS d
)
SELECT (SELECT count(*) FROM resubmitted), (SELECT count(*) FROM woken),
       coalesce((SELECT array_agg(r.id ORDER BY r.created_at, r.id) FROM resubmitted r), '{{}}')

-- name: cancel
-- Waiting: cancelled at once (and told on the finish channel). Processing: flagged; the
-- worker's heartbeat carries the request.
WITH changed AS (
    UPDATE {schema}.jobs j
    SET state = CASE WHEN j.state = 'processing' THEN j.state ELSE 'cancelled' END,
        finished_at = CASE WHEN j.state = 'processing' THEN j.finished_at ELSE now() END,
        error = CASE WHEN j.state = 'processing' THEN j.error ELSE %(error)s END,
        cancel_requested = j.cancel_requested OR j.state = 'processing'
    WHERE j.id = %(id)s AND j.state IN ('pending', 'retry', 'processing')
    RETURNING j.id, j.state
),
told AS (
    SELECT pg_notify({finished_channel}, c.id) FROM changed c WHERE c.state = 'cancelled'
)
SELECT c.id, (SELECT count(*) FROM told) FROM changed c

-- name: delete_job
WITH gone AS (
    DELETE FROM {schema}.jobs j WHERE j.id = %(id)s AND j.state <> 'processing' RETURNING j.id, j.key
),
attempts_gone AS (
    DELETE FROM {schema}.attempts a WHERE a.job_id IN (SELECT id FROM gone)
),
keys_gone AS (
    -- The statement still sees the deleted job, hence the explicit exclusion.
    DELETE FROM {schema}.keys k
    WHERE k.key IN (SELECT key FROM gone)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs o WHERE o.key = k.key AND o.id <> %(id)s)
)
SELECT count(*) FROM gone

-- name: purge
-- One bounded batch of one state per statement, oldest first along jobs_finished, so no lock
-- is held for long and no pass over the table is made; rows being written are skipped.
WITH doomed AS MATERIALIZED (
    SELECT j.id
    FROM {schema}.jobs j
    WHERE j.state = %(state)s AND j.finished_at < to_timestamp(%(before)s)
    ORDER BY j.finished_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
),
gone AS (
    DELETE FROM {schema}.jobs j USING doomed d WHERE j.id = d.id RETURNING j.id, j.key
),
attempts_gone AS (
    DELETE FROM {schema}.attempts a WHERE a.job_id IN (SELECT id FROM gone)
),
keys_gone AS (
    -- Keys none of whose jobs is left (the statement still sees the jobs it deletes).
    DELETE FROM {schema}.keys k
    WHERE k.key IN (SELECT key FROM gone WHERE key IS NOT NULL)
      AND NOT EXISTS (
          SELECT 1 FROM {schema}.jobs o
          WHERE o.key = k.key AND o.id NOT IN (SELECT id FROM gone WHERE key IS NOT NULL))
)
SELECT count(*) FROM gone

-- name: delete_many
-- Every matching job but the processing ones, with its attempts and unused keys (as purge);
-- plain FOR UPDATE waits for a row being written and then re-checks it is still not running.
WITH doomed AS MATERIALIZED (
    SELECT j.id FROM {schema}.jobs j
    WHERE j.state <> 'processing' AND {filters}
    FOR UPDATE
),
gone AS (
    DELETE FROM {schema}.jobs j USING doomed d WHERE j.id = d.id RETURNING j.id, j.key
),
attempts_gone AS (
    DELETE FROM {schema}.attempts a WHERE a.job_id IN (SELECT id FROM gone)
),
keys_gone AS (
    DELETE FROM {schema}.keys k
    WHERE k.key IN (SELECT key FROM gone WHERE key IS NOT NULL)
      AND NOT EXISTS (
          SELECT 1 FROM {schema}.jobs o
          WHERE o.key = k.key AND o.id NOT IN (SELECT id FROM gone WHERE key IS NOT NULL))
)
SELECT coalesce((SELECT array_agg(g.id ORDER BY g.id) FROM gone g), '{{}}'),
       (SELECT count(*) FROM {schema}.jobs j WHERE j.state = 'processing' AND {filters})

-- name: insert_action
INSERT INTO {schema}.actions (actor, role, action, job_id, count, detail)
VALUES (%(actor)s, %(role)s, %(action)s, %(job_id)s, %(count)s, %(detail)s)
RETURNING id

-- name: insert_action_jobs
INSERT INTO {schema}.action_jobs (action_id, job_id)
SELECT %(action_id)s, unnest(%(job_ids)s::text[])

-- name: action_columns
x.id, extract(epoch FROM x.at)::float8, x.actor, x.role, x.action, x.job_id, x.count, x.detail

-- name: actions_all
SELECT {action_columns} FROM {schema}.actions x ORDER BY x.id DESC LIMIT %(limit)s OFFSET %(offset)s

-- name: actions_job
SELECT {action_columns}
FROM {schema}.action_jobs l JOIN {schema}.actions x ON x.id = l.action_id
WHERE l.job_id = %(job_id)s
ORDER BY x.id DESC
LIMIT %(limit)s OFFSET %(offset)s

-- name: audits_all
SELECT {attempt_columns} FROM {schema}.attempts a ORDER BY a.id DESC LIMIT %(limit)s OFFSET %(offset)s

-- name: audits_job
SELECT {attempt_columns} FROM {schema}.attempts a
WHERE a.job_id = %(job_id)s
ORDER BY a.id DESC
LIMIT %(limit)s OFFSET %(offset)s

-- ---------------------------------------------------------------------------------------
-- Flow control (backends/flow.py states the rules; claim_flow applies them in the claim)
-- ---------------------------------------------------------------------------------------

-- name: queue_settings
SELECT q.name, q.concurrency, q.rate_limit, q.group_concurrency, q.group_rate_limit, q.paused
FROM {schema}.queues q WHERE q.name = ANY(%(names)s::text[]) ORDER BY q.name

-- name: all_queue_settings
SELECT q.name, q.concurrency, q.rate_limit, q.group_concurrency, q.group_rate_limit, q.paused
FROM {schema}.queues q ORDER BY q.name

-- name: lock_queue
-- Creates the row if missing, then locks it: changes to one queue's settings take turns.
INSERT INTO {schema}.queues AS q (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING

-- name: locked_queue
SELECT q.name, q.concurrency, q.rate_limit, q.group_concurrency, q.group_rate_limit, q.paused
FROM {schema}.queues q WHERE q.name = %(name)s FOR UPDATE

-- name: save_queue
UPDATE {schema}.queues q
SET concurrency = %(concurrency)s, rate_limit = %(rate_limit)s, rate_count = %(rate_count)s,
    rate_period = %(rate_period)s, group_concurrency = %(group_concurrency)s,
    group_rate_limit = %(group_rate_limit)s, group_rate_count = %(group_rate_count)s,
    group_rate_period = %(group_rate_period)s, paused = %(paused)s
WHERE q.name = %(name)s

-- name: queue_running
SELECT count(*) FROM {schema}.jobs j WHERE j.queue = %(queue)s AND j.state = 'processing'

-- name: queue_started
SELECT count(*) FROM {schema}.starts t
WHERE t.queue = %(queue)s AND t.started_at > now() - %(period)s * interval '1 second'

-- name: busiest_groups
SELECT j.group_key, count(*) FILTER (WHERE j.state IN ('pending', 'retry')),
       count(*) FILTER (WHERE j.state = 'processing')
FROM {schema}.jobs j
WHERE j.queue = %(queue)s AND j.group_key IS NOT NULL AND j.state IN ('pending', 'retry', 'processing')
GROUP BY j.group_key
ORDER BY 3 DESC, 2 DESC, 1
LIMIT %(limit)s

-- ---------------------------------------------------------------------------------------
-- Observability: the registry of live workers, and progress. Times on the database clock.
-- ---------------------------------------------------------------------------------------

-- name: workers_beat
-- Register or renew a batch of workers; forget the ones that expired long ago (an hour), so
-- the table holds only recent workers without a sweeper of its own.
WITH beat AS (
    INSERT INTO {schema}.workers AS w (id, info, last_seen_at, expires_at)
    SELECT b.id, b.info, now(), now() + %(ttl)s * interval '1 second'
    FROM unnest(%(ids)b::text[], %(infos)b::text[]) AS b(id, info)
    ON CONFLICT (id) DO UPDATE SET info = EXCLUDED.info, last_seen_at = EXCLUDED.last_seen_at,
                                   expires_at = EXCLUDED.expires_at
    RETURNING w.id
)
DELETE FROM {schema}.workers w
WHERE w.expires_at < now() - interval '1 hour' AND w.id <> ALL(ARRAY(SELECT id FROM beat))
RETURNING w.id

-- name: workers_remove
DELETE FROM {schema}.workers WHERE id = ANY(%(ids)b::text[]) RETURNING id

-- name: workers_live
SELECT w.info, extract(epoch FROM w.last_seen_at)::float8
FROM {schema}.workers w
WHERE w.expires_at >= now()

-- name: jobs_progress
-- Fenced like every write after a claim: only while the update's lease still holds the job.
-- The JSON is completed here with the database clock's updated_at.
UPDATE {schema}.jobs j
SET progress = json_build_object('fraction', p.fraction, 'message', p.message,
                                 'updated_at', extract(epoch FROM now())::float8)::text
FROM unnest(%(ids)b::text[], %(tokens)b::text[], %(fractions)b::float8[], %(messages)b::text[])
     AS p(id, token, fraction, message)
WHERE j.id = p.id AND j.lease_token = p.token
RETURNING j.id

-- name: gauge_table_rows
-- The planner's row count of the job table (-1 before its first ANALYZE).
SELECT c.reltuples::float8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND c.relname = 'jobs'

-- name: gauge_exact_counts
-- Waiting and running jobs through the claim and lease indexes, and the failure table through
-- jobs_finished (one range of it): what a person acts on is always exact.
SELECT j.queue, j.state, count(*)
FROM {schema}.jobs j
WHERE j.state IN ('pending', 'retry') OR j.state = 'processing'
GROUP BY j.queue, j.state
UNION ALL
SELECT j.queue, j.state, count(*)
FROM {schema}.jobs j
WHERE j.state = 'failed'
GROUP BY j.queue, j.state

-- name: gauge_finished_counts
-- Completed and cancelled jobs counted one by one: only while the table is small.
SELECT j.queue, j.state, count(*)
FROM {schema}.jobs j
WHERE j.state IN ('completed', 'cancelled')
GROUP BY j.queue, j.state

-- name: gauge_estimates
-- The (queue, state) pairs and their frequencies from the last ANALYZE (autovacuum re-analyses
-- the table after 5 percent of its rows change); the caller multiplies by the row count.
SELECT s.most_common_vals, s.most_common_freqs
FROM pg_stats_ext s
WHERE s.schemaname = %(schema)s AND s.statistics_name = 'jobs_queue_state'

-- name: gauge_oldest_pending
-- Each queue's oldest due pending job: per (queue, priority) level (waiting_levels), the first
-- due pending job along the claim index, then the oldest per queue.
WITH RECURSIVE {waiting_levels}
SELECT l.queue, extract(epoch FROM now() - min(n.run_at))::float8
FROM levels l
CROSS JOIN LATERAL (
    SELECT j.run_at FROM {schema}.jobs j
    WHERE j.queue = l.queue AND j.priority = l.priority AND j.state IN ('pending', 'retry')
      AND j.run_at <= now() AND j.state = 'pending'
    ORDER BY j.run_at
    LIMIT 1
) AS n
WHERE l.priority IS NOT NULL
GROUP BY l.queue

-- name: throughput
-- Jobs that ended completed or failed in each minute of the window, and the database clock
-- the window is measured on, in one statement (backends/throughput.py). Along jobs_finished
-- (state, finished_at) INCLUDE (queue): one index range per state, index-only where the
-- visibility map allows; never a pass over the finished table.
WITH clock AS (
    SELECT extract(epoch FROM now())::float8 AS now
)
SELECT k.now, c.minute, c.state, c.n
FROM clock k
LEFT JOIN LATERAL (
    SELECT floor(extract(epoch FROM j.finished_at) / 60)::bigint AS minute, j.state, count(*) AS n
    FROM {schema}.jobs j
    WHERE j.state IN ('completed', 'failed')
      AND j.finished_at >= to_timestamp((floor(k.now / 60) - %(minutes)s::integer + 1) * 60)
      AND (%(queue)s::text IS NULL OR j.queue = %(queue)s::text)
    GROUP BY 1, 2
) c ON true
