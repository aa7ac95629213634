-- Summaries of closed hours for GET /api/collectors/stats (server/runs/stats_summaries.py).
--
-- Durations and queue waits are counted in buckets that merge: a value of v seconds falls in
-- bucket 0 when v < 0.001 (it reads as 0), otherwise in bucket 1 + ceil(log_1.04(1000 v)), and
-- a bucket reads as the value 2 * 1.04^(k-1) / 2.04 ms, within 2 % of every value in it. A p50
-- or p95 is the value of the bucket holding the ceil(q n)-th smallest of the n values; the same
-- definition whether it comes from the raw rows or from summaries (docs/COLLECTOR_RUN_TRACKING_API.md).
CREATE FUNCTION collector_hub_stats_bucket(seconds double precision) RETURNS integer
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN seconds IS NULL THEN NULL WHEN seconds < 0.001 THEN 0
                ELSE 1 + ceil(ln(seconds * 1000) / ln(1.04))::integer END
$$;

-- Hours that end at least five minutes before now are "settled": only they are summarised.
CREATE FUNCTION collector_hub_stats_settled_before() RETURNS timestamptz
    LANGUAGE sql STABLE AS $$ SELECT date_trunc('hour', now() - interval '5 minutes', 'UTC') $$;

-- A change to the jobs of an hour that has ended, or ends within five minutes, leaves a row
-- here, in the writer's transaction. A summary records the sum of the weights of its hours'
-- rows when it was made, and is used only while that sum is unchanged. Rows are only ever
-- added (no row lock for writers to queue or deadlock on); the summariser merges the rows of
-- an hour into one row carrying their total weight, which keeps every sum.
CREATE TABLE job_stats_changes (
    change_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour       timestamptz NOT NULL,
    weight     bigint NOT NULL DEFAULT 1
);
CREATE INDEX job_stats_changes_hour_idx ON job_stats_changes (hour) INCLUDE (weight);

-- Why a summary of a closed hour learns of every later change: any INSERT, UPDATE or DELETE
-- of job_runs, from the runner, the API, psql, COPY, or a load with
-- session_replication_role = replica (the usual "triggers off"), fires these triggers (ENABLE
-- ALWAYS), which record the hours touched. A TRUNCATE forgets every summary.
-- ALTER TABLE ... DISABLE TRIGGER ALL (pg_restore --disable-triggers) turns them off too: after
-- such a load, SELECT collector_hub_stats_forget(); (docs/DEPLOYMENT.md).
-- The five minutes on each side cover a transaction that writes a job just before its hour
-- ends and commits after: a write the trigger did not record (its hour had more than five
-- minutes to go) is seen by any summary unless its transaction stayed open for more than ten
-- minutes after it.
CREATE FUNCTION collector_hub_stats_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    edge timestamptz := date_trunc('hour', clock_timestamp() + interval '5 minutes', 'UTC');
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_stats_changes (hour)
        SELECT DISTINCT date_trunc('hour', started_at, 'UTC') FROM new_rows WHERE started_at < edge;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO job_stats_changes (hour)
        SELECT DISTINCT date_trunc('hour', t, 'UTC') FROM (
            SELECT started_at AS t FROM old_rows UNION ALL SELECT started_at FROM new_rows) r
         WHERE t < edge;
    ELSE
        INSERT INTO job_stats_changes (hour)
        SELECT DISTINCT date_trunc('hour', started_at, 'UTC') FROM old_rows WHERE started_at < edge;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER job_runs_stats_insert AFTER INSERT ON job_runs REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION collector_hub_stats_touch();
CREATE TRIGGER job_runs_stats_update AFTER UPDATE ON job_runs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION collector_hub_stats_touch();
CREATE TRIGGER job_runs_stats_delete AFTER DELETE ON job_runs REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION collector_hub_stats_touch();

-- A summarised period: span_hours (1, 24, 192 or 1536) from period_start (a multiple of the
-- span since 1970-01-01 UTC), made when its hours' changes weighed `version`.
CREATE TABLE job_stats_periods (
    span_hours    integer NOT NULL,
    period_start  timestamptz NOT NULL,
    version       bigint NOT NULL,
    made_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (span_hours, period_start)
);

-- One collector's jobs requested in a period: counts, the longest duration, and the
-- duration and queue-wait buckets (keys ascending, with their counts); duration_p50_bucket is
-- the bucket of the period's own median (its point in a series).
CREATE TABLE job_stats_summaries (
    span_hours       integer NOT NULL,
    period_start     timestamptz NOT NULL,
    collector        text NOT NULL,
    runs             bigint NOT NULL,
    queued           bigint NOT NULL,
    running          bigint NOT NULL,
    completed        bigint NOT NULL,
    failed           bigint NOT NULL,
    cancelled        bigint NOT NULL,
    duration_max     double precision,
    duration_p50_bucket integer,
    duration_keys    integer[] NOT NULL,
    duration_counts  bigint[] NOT NULL,
    wait_keys        integer[] NOT NULL,
    wait_counts      bigint[] NOT NULL,
    PRIMARY KEY (span_hours, period_start, collector),
    FOREIGN KEY (span_hours, period_start) REFERENCES job_stats_periods ON DELETE CASCADE
);

CREATE FUNCTION collector_hub_stats_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_stats_periods;
    DELETE FROM job_stats_changes;
    RETURN NULL;
END $$;
CREATE TRIGGER job_runs_stats_truncate AFTER TRUNCATE ON job_runs
    FOR EACH STATEMENT EXECUTE FUNCTION collector_hub_stats_truncated();

-- Forget every summary (after a load with the triggers disabled); the next request rebuilds.
CREATE FUNCTION collector_hub_stats_forget() RETURNS void LANGUAGE sql AS $$
    DELETE FROM job_stats_periods;
$$;

ALTER TABLE job_runs ENABLE ALWAYS TRIGGER job_runs_stats_insert;
ALTER TABLE job_runs ENABLE ALWAYS TRIGGER job_runs_stats_update;
ALTER TABLE job_runs ENABLE ALWAYS TRIGGER job_runs_stats_delete;
ALTER TABLE job_runs ENABLE ALWAYS TRIGGER job_runs_stats_truncate;
