-- Live push: every committed change to a job or a batch wakes every server process.
--
-- NOTIFY is only a wake-up (docs/ARCHITECTURE.md, rule 1): the payload carries identifiers and the
-- batch's new seq, never message text, so it stays under ~120 bytes whatever a row holds
-- (the limit is 8000). Listeners re-read state from the tables.
--
-- How many NOTIFYs one write makes: a job INSERT/UPDATE refreshes its batch through the
-- trigger in 001 (job_runs_after_write), so the batch row changes too. Only the job's
-- notification is sent for that pair: it names the batch and carries the batch's seq after the
-- refresh (AFTER triggers fire in name order, so job_runs_after_write has already run). The
-- batch trigger speaks only for writes made to job_batches directly (pg_trigger_depth() = 1:
-- creating a batch, or raw SQL). One job update = one NOTIFY; a batch of N jobs created in one
-- transaction = N + 1; cancelling N jobs in one statement = N (distinct payloads, since each
-- names its job; PostgreSQL folds only identical payloads within a transaction).
--
-- Payloads (JSON):
--   {"kind": "job", "job_id": "ni_12345678", "batch_id": "bc_12345678", "seq": 42, "status": "running"}
--   {"kind": "batch", "batch_id": "bc_12345678", "seq": 43}
-- `status` lets a runner wake up at once when a job is queued.

CREATE FUNCTION collector_hub_notify_job() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    batch_seq bigint;
BEGIN
    SELECT seq INTO batch_seq FROM job_batches WHERE batch_id = NEW.batch_id;
    PERFORM pg_notify('collector_hub', json_build_object(
        'kind', 'job', 'job_id', NEW.job_id, 'batch_id', NEW.batch_id,
        'seq', coalesce(batch_seq, NEW.seq), 'status', NEW.status)::text);
    RETURN NULL;
END $$;

-- Named so that it sorts after job_runs_after_write (the batch refresh).
CREATE TRIGGER job_runs_notify AFTER INSERT OR UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION collector_hub_notify_job();

CREATE FUNCTION collector_hub_notify_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;  -- a refresh caused by a job change: the job's notification covers it
    END IF;
    PERFORM pg_notify('collector_hub', json_build_object(
        'kind', 'batch', 'batch_id', NEW.batch_id, 'seq', NEW.seq)::text);
    RETURN NULL;
END $$;

CREATE TRIGGER job_batches_notify AFTER INSERT OR UPDATE ON job_batches
    FOR EACH ROW EXECUTE FUNCTION collector_hub_notify_batch();

-- Resynchronising after the LISTEN connection dropped: "which batches changed since seq N".
CREATE INDEX job_batches_seq_idx ON job_batches (seq);
