-- Operating runs (issue 12): job logs, re-runs, runner heartbeats, job metrics, and the
-- indexes that keep history searchable at a million jobs.

-- Re-runs (DESIGN.md invariant 12): a re-run is a new batch naming the batch it re-runs, and
-- each of its jobs names the job it re-runs; nothing about the original changes. Plain text,
-- not foreign keys: ON DELETE SET NULL would have to update terminal jobs, which are final.
ALTER TABLE job_batches ADD COLUMN rerun_of text CHECK (rerun_of ~ '^bc_[0-9]{8}$');
ALTER TABLE job_runs ADD COLUMN rerun_of text CHECK (rerun_of ~ '^[a-z0-9]{2}_[0-9]{8}$');

-- History and batch listings page by (started_at, id) descending with a keyset cursor; each
-- filter (collector, status, or both) has an index in that order, so a page is an index range
-- read however many rows match. These replace the two single-order indexes of 001.
DROP INDEX job_runs_collector_idx;
DROP INDEX job_runs_started_idx;
CREATE INDEX job_runs_history_idx ON job_runs (started_at DESC, job_id DESC);
CREATE INDEX job_runs_collector_history_idx ON job_runs (collector, started_at DESC, job_id DESC);
CREATE INDEX job_runs_status_history_idx ON job_runs (status, started_at DESC, job_id DESC);
CREATE INDEX job_runs_collector_status_idx ON job_runs (collector, status, started_at DESC, job_id DESC);
CREATE INDEX job_batches_history_idx ON job_batches (started_at DESC, batch_id DESC);
CREATE INDEX job_batches_status_history_idx ON job_batches (status, started_at DESC, batch_id DESC);

-- Job logs (invariant 13): what a collector process printed, one row per line, written by its
-- runner in batches (one INSERT per batch of lines), capped per job and redacted before they
-- get here. Line numbers count every line the job printed, so the first kept line says how
-- many were dropped before it. `progress` marks stdout lines that were @progress reports;
-- stream `system` lines are the runner's own notes (a cut line, a restart).
CREATE TABLE job_logs (
    job_id     text NOT NULL REFERENCES job_runs (job_id) ON DELETE CASCADE,
    line_no    bigint NOT NULL CHECK (line_no > 0),
    stream     text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    progress   boolean NOT NULL DEFAULT false,
    logged_at  timestamptz NOT NULL,
    text       text NOT NULL,
    PRIMARY KEY (job_id, line_no)
);
-- Retention deletes by age; lines arrive in time order, so a BRIN index is enough and costs
-- the inserts almost nothing.
CREATE INDEX job_logs_logged_at_brin ON job_logs USING brin (logged_at);

-- New lines wake every server process through the same channel as job changes: one small
-- payload per job per INSERT statement, naming the job and its newest line, never the text
-- (invariant 1). {"kind": "log", "job_id": "ni_12345678", "line": 1042}
CREATE FUNCTION collector_hub_notify_logs() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT job_id, max(line_no) AS line FROM new_lines GROUP BY job_id LOOP
        PERFORM pg_notify('collector_hub', json_build_object('kind', 'log', 'job_id', r.job_id, 'line', r.line)::text);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER job_logs_notify AFTER INSERT ON job_logs
    REFERENCING NEW TABLE AS new_lines FOR EACH STATEMENT EXECUTE FUNCTION collector_hub_notify_logs();

-- Runners: each records a heartbeat, so operators can see them and a queued job whose
-- collector no live runner offers can fail instead of waiting forever.
CREATE TABLE runners (
    runner_id     text PRIMARY KEY,
    host          text NOT NULL,
    collectors    text[] NOT NULL,
    capacity      integer NOT NULL CHECK (capacity > 0),
    running_jobs  text[] NOT NULL DEFAULT '{}',
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    heartbeat_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    stopped_at    timestamptz
);
CREATE INDEX runners_collectors_idx ON runners USING gin (collectors);

-- Job metrics (collector_hub_job_duration_seconds, ..._queue_wait_seconds,
-- ..._jobs_finished_total): counted here when a job becomes terminal, whoever made it so, so
-- every server process reads and exports the same figures. Bucket bounds are seconds; the
-- counts are per bucket (not cumulative) and the exporter accumulates them.
CREATE FUNCTION collector_hub_metric_buckets() RETURNS float8[]
    LANGUAGE sql IMMUTABLE AS $$
    SELECT ARRAY[1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600]::float8[] $$;

CREATE TABLE job_finish_metrics (
    collector         text NOT NULL,
    status            text NOT NULL,
    finished          bigint NOT NULL DEFAULT 0,
    duration_buckets  bigint[] NOT NULL,  -- one more than the bounds: the last is +Inf
    duration_sum      float8 NOT NULL DEFAULT 0,
    wait_buckets      bigint[] NOT NULL,
    wait_sum          float8 NOT NULL DEFAULT 0,
    wait_count        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (collector, status)
);

-- Count one terminal job into its (collector, status) row.
CREATE FUNCTION collector_hub_count_job(j job_runs) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    bounds float8[] := collector_hub_metric_buckets();
    ran float8 := greatest(0, extract(epoch FROM j.ended_at - coalesce(j.run_started_at, j.started_at)));
    waited float8;
    ran_at int;
    waited_at int;
BEGIN
    -- Duration: from the process start (or the request, for a job that never started) to the
    -- end. Queue wait: from the request to the process start, for jobs that started.
    ran_at := collector_hub_bucket_of(ran, bounds);
    IF j.run_started_at IS NOT NULL THEN
        waited := greatest(0, extract(epoch FROM j.run_started_at - j.started_at));
        waited_at := collector_hub_bucket_of(waited, bounds);
    END IF;
    INSERT INTO job_finish_metrics (collector, status, duration_buckets, wait_buckets)
        VALUES (j.collector, j.status,
                array_fill(0::bigint, ARRAY[array_length(bounds, 1) + 1]),
                array_fill(0::bigint, ARRAY[array_length(bounds, 1) + 1]))
        ON CONFLICT (collector, status) DO NOTHING;
    UPDATE job_finish_metrics
       SET finished = finished + 1,
           duration_buckets[ran_at] = duration_buckets[ran_at] + 1,
           duration_sum = duration_sum + ran,
           wait_buckets[coalesce(waited_at, 1)] = wait_buckets[coalesce(waited_at, 1)] + (waited_at IS NOT NULL)::int,
           wait_sum = wait_sum + coalesce(waited, 0),
           wait_count = wait_count + (waited_at IS NOT NULL)::int
     WHERE collector = j.collector AND status = j.status;
END $$;

-- The 1-based bucket of a value: the first bound it does not exceed (Prometheus buckets are
-- "less than or equal"), or the last, +Inf, bucket.
CREATE FUNCTION collector_hub_bucket_of(value float8, bounds float8[]) RETURNS int
    LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(min(i), array_length(bounds, 1) + 1)
      FROM generate_subscripts(bounds, 1) AS i WHERE value <= bounds[i] $$;

CREATE FUNCTION collector_hub_count_finished_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF collector_hub_is_terminal(NEW.status) AND (TG_OP = 'INSERT' OR NOT collector_hub_is_terminal(OLD.status)) THEN
        PERFORM collector_hub_count_job(NEW);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER job_runs_count_finished AFTER INSERT OR UPDATE OF status ON job_runs
    FOR EACH ROW EXECUTE FUNCTION collector_hub_count_finished_job();

-- Jobs that ended before this migration count too.
SELECT collector_hub_count_job(j) FROM job_runs j WHERE collector_hub_is_terminal(j.status);
