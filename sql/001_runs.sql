-- Collector runs: batches and their jobs.
--
-- Invariants kept here, in SQL, so that every writer (the API, a runner, a collector process,
-- the CLI, or someone with psql) keeps them:
--   * every committed change bumps the global sequence collector_hub_seq, stored in `seq`
--     (docs/ARCHITECTURE.md, rule 2);
--   * terminal states are final (rule 7): a trigger refuses any change to a job that is
--     completed, failed or cancelled;
--   * a batch's aggregates are recomputed from its jobs in the same transaction as every job
--     change (rule 8).

CREATE SEQUENCE collector_hub_seq;

CREATE TABLE job_batches (
    batch_id              text PRIMARY KEY CHECK (batch_id ~ '^bc_[0-9]{8}$'),
    status                text NOT NULL DEFAULT 'queued'
                          CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    priority              text NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    progress_percent      integer CHECK (progress_percent BETWEEN 0 AND 100),
    message               text,
    error                 text,
    estimated_completion  timestamptz,
    started_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at              timestamptz,
    requested_by          text,
    seq                   bigint NOT NULL DEFAULT nextval('collector_hub_seq')
);

CREATE TABLE job_runs (
    job_id             text PRIMARY KEY CHECK (job_id ~ '^[a-z0-9]{2}_[0-9]{8}$'),
    batch_id           text NOT NULL REFERENCES job_batches (batch_id) ON DELETE CASCADE,
    collector          text NOT NULL,
    job_name           text NOT NULL,
    position           integer NOT NULL DEFAULT 0,  -- order within the batch, as requested
    status             text NOT NULL DEFAULT 'queued'
                       CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    priority           text NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    progress_percent   integer CHECK (progress_percent BETWEEN 0 AND 100),
    message            text,
    error              text,
    -- started_at is when the run was requested (the contract shows it on queued jobs);
    -- run_started_at is when a runner actually started the process.
    started_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    run_started_at     timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at           timestamptz,
    last_progress_at   timestamptz,
    runner_id          text,
    host               text,
    pid                integer,
    exit_code          integer,
    seq                bigint NOT NULL DEFAULT nextval('collector_hub_seq')
);

CREATE INDEX job_runs_batch_idx ON job_runs (batch_id);
-- The claim query: queued jobs by priority, then age.
CREATE INDEX job_runs_queue_idx ON job_runs (
    (CASE priority WHEN 'high' THEN 0 WHEN 'normal' THEN 1 ELSE 2 END), started_at
) WHERE status = 'queued';
CREATE INDEX job_runs_active_idx ON job_runs (status) WHERE status IN ('queued', 'running');
CREATE INDEX job_runs_collector_idx ON job_runs (collector, started_at DESC);
CREATE INDEX job_runs_started_idx ON job_runs (started_at DESC);

CREATE FUNCTION collector_hub_is_terminal(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT status IN ('completed', 'failed', 'cancelled') $$;

-- Job rows: stamp seq/updated_at, keep terminal states final, check transitions.
CREATE FUNCTION job_runs_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ts timestamptz := clock_timestamp();
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF collector_hub_is_terminal(OLD.status) THEN
            RAISE EXCEPTION 'job % is already %; terminal states are final', OLD.job_id, OLD.status
                USING ERRCODE = 'CH001';
        END IF;
        -- A running job may be handed back to the queue (a runner shutting down) but
        -- nothing becomes queued from anywhere else.
        IF NEW.status = 'queued' AND OLD.status <> 'queued' AND OLD.status <> 'running' THEN
            RAISE EXCEPTION 'job % cannot go from % to queued', OLD.job_id, OLD.status
                USING ERRCODE = 'CH002';
        END IF;
        IF NEW.batch_id <> OLD.batch_id OR NEW.job_id <> OLD.job_id OR NEW.collector <> OLD.collector THEN
            RAISE EXCEPTION 'job identity columns are immutable' USING ERRCODE = 'CH002';
        END IF;
    END IF;
    NEW.seq := nextval('collector_hub_seq');
    NEW.updated_at := ts;
    IF collector_hub_is_terminal(NEW.status) THEN
        NEW.ended_at := coalesce(NEW.ended_at, ts);
        IF NEW.status = 'completed' THEN
            NEW.progress_percent := 100;
        END IF;
    ELSE
        NEW.ended_at := NULL;
    END IF;
    IF NEW.status = 'running' AND NEW.run_started_at IS NULL THEN
        NEW.run_started_at := ts;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER job_runs_before_write BEFORE INSERT OR UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION job_runs_before_write();

-- Batch rows: stamp seq/updated_at; a terminal batch only changes through its jobs.
CREATE FUNCTION job_batches_before_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.seq := nextval('collector_hub_seq');
    NEW.updated_at := clock_timestamp();
    RETURN NEW;
END $$;

CREATE TRIGGER job_batches_before_write BEFORE INSERT OR UPDATE ON job_batches
    FOR EACH ROW EXECUTE FUNCTION job_batches_before_write();

-- Expected end of one job: its end if terminal; linear from progress once it has some;
-- otherwise the mean of the last five completed runs of the same collector.
CREATE FUNCTION collector_hub_job_eta(j job_runs) RETURNS timestamptz
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    typical interval;
    began timestamptz;
BEGIN
    IF collector_hub_is_terminal(j.status) THEN
        RETURN j.ended_at;
    END IF;
    began := coalesce(j.run_started_at, clock_timestamp());
    IF j.status = 'running' AND coalesce(j.progress_percent, 0) > 0 THEN
        RETURN began + (clock_timestamp() - began) * (100.0 / j.progress_percent);
    END IF;
    SELECT avg(r.ended_at - coalesce(r.run_started_at, r.started_at)) INTO typical FROM (
        SELECT ended_at, run_started_at, started_at FROM job_runs
        WHERE collector = j.collector AND status = 'completed'
        ORDER BY started_at DESC LIMIT 5
    ) r;
    IF typical IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN greatest(began + typical, clock_timestamp());
END $$;

-- Recompute one batch from its jobs. The batch row is locked first, in its own statement, so
-- that under READ COMMITTED the aggregate query that follows sees every job change committed
-- by a concurrent writer of the same batch (each plpgsql statement takes a fresh snapshot).
CREATE FUNCTION collector_hub_refresh_batch(target text) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    n_total int; n_queued int; n_running int; n_completed int; n_failed int; n_cancelled int;
    avg_progress int; latest_eta timestamptz; missing_eta int; failures text;
    new_status text; new_message text; new_error text; new_eta timestamptz;
BEGIN
    PERFORM 1 FROM job_batches WHERE batch_id = target FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT count(*),
           count(*) FILTER (WHERE status = 'queued'),
           count(*) FILTER (WHERE status = 'running'),
           count(*) FILTER (WHERE status = 'completed'),
           count(*) FILTER (WHERE status = 'failed'),
           count(*) FILTER (WHERE status = 'cancelled'),
           -- completed jobs count as 100; a failed or cancelled job keeps how far it got
           floor(avg(CASE WHEN status = 'completed' THEN 100
                          ELSE coalesce(progress_percent, 0) END))::int,
           max(collector_hub_job_eta(j)),
           count(*) FILTER (WHERE collector_hub_job_eta(j) IS NULL),
           string_agg(CASE WHEN status = 'failed'
                           THEN job_name || ': ' || left(coalesce(error, 'failed'), 500) END,
                      '; ' ORDER BY job_name)
      INTO n_total, n_queued, n_running, n_completed, n_failed, n_cancelled,
           avg_progress, latest_eta, missing_eta, failures
      FROM job_runs j WHERE batch_id = target;

    IF n_total = 0 THEN
        RETURN;
    END IF;
    IF n_queued + n_running > 0 THEN
        new_status := CASE WHEN n_running = 0 AND n_queued = n_total THEN 'queued' ELSE 'running' END;
        new_message := CASE WHEN new_status = 'queued'
                            THEN format('Waiting for %s collector(s) to start', n_total)
                            ELSE format('Processing collectors: %s of %s finished, %s running, %s queued',
                                        n_total - n_queued - n_running, n_total, n_running, n_queued) END;
        new_error := NULL;
        new_eta := CASE WHEN missing_eta = 0 THEN date_trunc('second', latest_eta) END;
    ELSE
        new_status := CASE WHEN n_failed > 0 THEN 'failed'
                           WHEN n_cancelled > 0 THEN 'cancelled'
                           ELSE 'completed' END;
        new_message := CASE new_status
            WHEN 'completed' THEN format('All %s collector(s) completed', n_total)
            WHEN 'failed' THEN format('%s of %s collector(s) failed', n_failed, n_total)
            ELSE format('Cancelled: %s of %s collector(s) cancelled, %s completed',
                        n_cancelled, n_total, n_completed) END;
        new_error := CASE WHEN new_status = 'failed' THEN left(failures, 4000) END;
        new_eta := NULL;
    END IF;

    UPDATE job_batches
       SET status = new_status,
           progress_percent = avg_progress,
           message = new_message,
           error = new_error,
           estimated_completion = new_eta,
           ended_at = CASE WHEN collector_hub_is_terminal(new_status)
                           THEN coalesce(ended_at, clock_timestamp()) END
     WHERE batch_id = target;
END $$;

CREATE FUNCTION job_runs_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM collector_hub_refresh_batch(NEW.batch_id);
    RETURN NULL;
END $$;

CREATE TRIGGER job_runs_after_write AFTER INSERT OR UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION job_runs_after_write();
