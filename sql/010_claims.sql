-- Jobs that look after themselves (issues 22 and 24): steps that run after others in a batch,
-- automatic retries, and runner routing. docs/COLLECTORS.md describes each for operators.
--
--   after_collectors, run_if   a job waits (queued) until the jobs of these collectors in its
--                              batch have ended; then it runs if run_if holds over them, or
--                              ends cancelled saying why. Absent collectors are ignored.
--   attempt, max_attempts ...  a failed attempt with attempts left goes back to the queue with
--                              a not-before time instead of failing (a BEFORE trigger, so every
--                              way an attempt ends counts the same: the runner's verdict, the
--                              watchdog, a runner that vanished).
--   runner_labels              labels a runner must carry to claim the job (runners.labels).
--
-- Each job carries its collector's settings as they were when it was queued, so every runner
-- and every node treats it the same, whatever its own collectors file says.

ALTER TABLE job_runs
    ADD COLUMN after_collectors    text[] NOT NULL DEFAULT '{}',
    ADD COLUMN run_if              text NOT NULL DEFAULT 'any_succeeded'
                                   CHECK (run_if IN ('any_succeeded', 'all_succeeded', 'always')),
    ADD COLUMN attempt             integer NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    ADD COLUMN max_attempts        integer NOT NULL DEFAULT 1 CHECK (max_attempts BETWEEN 1 AND 101),
    ADD COLUMN retry_delay         float8 NOT NULL DEFAULT 30 CHECK (retry_delay >= 0),
    ADD COLUMN retry_backoff       float8 NOT NULL DEFAULT 2 CHECK (retry_backoff >= 1),
    ADD COLUMN retry_max_delay     float8 NOT NULL DEFAULT 600 CHECK (retry_max_delay >= 0),
    ADD COLUMN retry_jitter        boolean NOT NULL DEFAULT true,
    ADD COLUMN no_retry_exit_codes integer[] NOT NULL DEFAULT '{78}',
    ADD COLUMN not_before          timestamptz,
    ADD COLUMN runner_labels       text[] NOT NULL DEFAULT '{}';

-- What a runner can take: its labels, and the collectors it knows but lacks credentials for
-- (so a job nobody can take can say why).
ALTER TABLE runners
    ADD COLUMN labels               text[] NOT NULL DEFAULT '{}',
    ADD COLUMN without_credentials  text[] NOT NULL DEFAULT '{}';

-- ---------------------------------------------------------------------------------------------
-- Steps that run after others.

-- Once every job a waiting job runs after has ended (in the transaction that ends the last of
-- them), decide: cancel it with the reason, or say it is ready. The claim query takes it only
-- when none of them is active, so it never starts early; deciding here, in the same commit as
-- the last dependency's end, means no runner can see the dependencies ended and the waiting
-- job not yet decided.
CREATE FUNCTION collector_hub_release_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    w record;
    ended text;
    succeeded int;
    total int;
    holds boolean;
BEGIN
    IF NOT collector_hub_is_terminal(NEW.status) OR collector_hub_is_terminal(OLD.status) THEN
        RETURN NULL;
    END IF;
    FOR w IN SELECT * FROM job_runs
              WHERE batch_id = NEW.batch_id AND status = 'queued' AND NEW.collector = ANY (after_collectors)
              ORDER BY position, job_id LOOP
        CONTINUE WHEN EXISTS (SELECT 1 FROM job_runs d
                               WHERE d.batch_id = w.batch_id AND d.job_id <> w.job_id
                                 AND d.collector = ANY (w.after_collectors)
                                 AND NOT collector_hub_is_terminal(d.status));
        SELECT count(*) FILTER (WHERE d.status = 'completed'), count(*),
               string_agg(d.collector || ' ' || d.status, ', ' ORDER BY d.position, d.job_id)
          INTO succeeded, total, ended
          FROM job_runs d
         WHERE d.batch_id = w.batch_id AND d.job_id <> w.job_id AND d.collector = ANY (w.after_collectors);
        holds := CASE w.run_if WHEN 'always' THEN true
                               WHEN 'all_succeeded' THEN succeeded = total
                               ELSE succeeded > 0 END;
        IF holds THEN
            UPDATE job_runs SET message = left('Ready to run: ' || ended, 1000) WHERE job_id = w.job_id;
        ELSE
            UPDATE job_runs
               SET status = 'cancelled',
                   message = left(CASE w.run_if WHEN 'all_succeeded'
                                                THEN 'Not run: not every collector it runs after succeeded ('
                                                ELSE 'Not run: no collector succeeded (' END || ended || ')', 1000)
             WHERE job_id = w.job_id;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER job_runs_release_waiting AFTER UPDATE OF status ON job_runs
    FOR EACH ROW EXECUTE FUNCTION collector_hub_release_waiting();

-- ---------------------------------------------------------------------------------------------
-- Automatic retries.

-- The wait before attempt n + 1 (n >= 1 attempts done): retry_delay * retry_backoff^(n-1), at
-- most retry_max_delay, with jitter (between 75 % and 100 % of it) so that many jobs failed by
-- one outage do not all come back at the same moment.
CREATE FUNCTION collector_hub_retry_wait(j job_runs) RETURNS float8 LANGUAGE sql VOLATILE AS $$
    SELECT least(j.retry_max_delay, j.retry_delay * power(j.retry_backoff, j.attempt - 1))
           * CASE WHEN j.retry_jitter THEN 0.75 + random() * 0.25 ELSE 1 END
$$;

-- A running job that fails with attempts left. The end of an attempt is recorded by its
-- runner (or the watchdog, or a runner settling what a vanished one left), which says so with
-- SET LOCAL collector_hub.ending_attempt = 'on': then the job goes back to the queue with a
-- not-before time, unless its exit code is one that retrying cannot fix. A collector's own
-- "failed" report while its process still runs only records the error: the job stays running
-- until the process exits, so that its exit code decides.
CREATE FUNCTION collector_hub_attempt_failed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wait float8;
    reason text;
BEGIN
    IF NOT (OLD.status = 'running' AND NEW.status = 'failed' AND OLD.attempt < OLD.max_attempts) THEN
        RETURN NEW;
    END IF;
    IF coalesce(current_setting('collector_hub.ending_attempt', true), '') <> 'on' THEN
        NEW.status := 'running';
        NEW.error := coalesce(NEW.error, NEW.message);
        RETURN NEW;
    END IF;
    -- The collector said why before it exited: that is the better error.
    IF OLD.error IS NOT NULL THEN
        NEW.error := OLD.error;
        NEW.message := OLD.message;
    END IF;
    IF NEW.exit_code = ANY (OLD.no_retry_exit_codes) THEN
        RETURN NEW;
    END IF;
    reason := coalesce(OLD.error, NEW.error, NEW.message, 'failed');
    IF OLD.error IS NULL AND position(E'\nLast lines of stderr:\n' IN reason) > 0 THEN
        reason := (regexp_match(reason, '([^\n]*\S)\s*$'))[1];  -- the last line the collector wrote
    ELSE
        reason := split_part(reason, E'\n', 1);
    END IF;
    wait := collector_hub_retry_wait(OLD);
    NEW.status := 'queued';
    NEW.attempt := OLD.attempt + 1;
    NEW.not_before := clock_timestamp() + make_interval(secs => wait);
    NEW.message := left(format('Attempt %s of %s in %s s (last: %s)',
                               OLD.attempt + 1, OLD.max_attempts, round(wait::numeric), left(reason, 300)), 1000);
    NEW.runner_id := NULL;
    NEW.host := NULL;
    NEW.pid := NULL;
    NEW.run_started_at := NULL;
    NEW.last_progress_at := NULL;
    NEW.progress_percent := NULL;
    RETURN NEW;
END $$;

-- BEFORE triggers fire in name order: this one before job_runs_before_write, which then sees
-- a job going back to the queue (allowed from running) rather than a terminal one.
CREATE TRIGGER job_runs_attempt_failed BEFORE UPDATE ON job_runs
    FOR EACH ROW EXECUTE FUNCTION collector_hub_attempt_failed();

-- A job waiting for its next attempt is expected once its wait is over: the ETA of a queued
-- job starts from its not-before time (otherwise as in 001).
CREATE OR REPLACE FUNCTION collector_hub_job_eta(j job_runs) RETURNS timestamptz
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    typical interval;
    began timestamptz;
BEGIN
    IF collector_hub_is_terminal(j.status) THEN
        RETURN j.ended_at;
    END IF;
    began := coalesce(j.run_started_at, greatest(j.not_before, clock_timestamp()));
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
