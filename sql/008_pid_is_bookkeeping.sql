-- Recording a collector's pid is the runner's bookkeeping (which process group to stop), not a
-- change anyone follows: the job keeps its seq and updated_at, its batch is not rewritten and
-- no notification is sent. Before this, every run showed its "Starting collector" state twice
-- to live clients: once from the claim, once more (with a new seq) from the pid.

-- True when NEW differs from OLD in nothing but the pid (and the stamps the first BEFORE
-- trigger has just put on it).
CREATE FUNCTION collector_hub_only_pid_changed(old_row job_runs, new_row job_runs) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$
    SELECT old_row.pid IS DISTINCT FROM new_row.pid
       AND (to_jsonb(old_row) - 'pid' - 'seq' - 'updated_at') = (to_jsonb(new_row) - 'pid' - 'seq' - 'updated_at')
$$;

CREATE FUNCTION job_runs_keep_stamps() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.seq := OLD.seq;
    NEW.updated_at := OLD.updated_at;
    RETURN NEW;
END $$;

-- BEFORE triggers fire in name order: this one runs after job_runs_before_write's stamps.
CREATE TRIGGER job_runs_before_write_pid BEFORE UPDATE ON job_runs
    FOR EACH ROW WHEN (OLD.pid IS DISTINCT FROM NEW.pid AND collector_hub_only_pid_changed(OLD, NEW))
    EXECUTE FUNCTION job_runs_keep_stamps();

-- The batch refresh and the notification skip an update that kept the job's seq.
CREATE OR REPLACE FUNCTION job_runs_after_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.seq = OLD.seq THEN
        RETURN NULL;
    END IF;
    PERFORM collector_hub_refresh_batch(NEW.batch_id);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION collector_hub_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    batch_seq bigint;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.seq = OLD.seq THEN
        RETURN NULL;
    END IF;
    SELECT seq INTO batch_seq FROM job_batches WHERE batch_id = NEW.batch_id;
    PERFORM pg_notify('collector_hub', json_build_object(
        'kind', 'job', 'job_id', NEW.job_id, 'batch_id', NEW.batch_id,
        'seq', coalesce(batch_seq, NEW.seq), 'status', NEW.status)::text);
    RETURN NULL;
END $$;
