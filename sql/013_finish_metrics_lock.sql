-- Jobs that end in two transactions at once must not deadlock on their finish metrics.
--
-- 006 counts each ended job into its (collector, status) row of job_finish_metrics from a row
-- trigger. A statement that ends several jobs (a batch cancel, the watchdog) updates those
-- rows in the order it meets the jobs, so two such transactions could lock two rows in
-- opposite orders and PostgreSQL aborted one of them (a 500 for a cancel). Now the count
-- first takes a lock on the table that conflicts with itself and with nothing a reader takes:
-- the second transaction waits for the first to commit, in one order, and readers (the
-- /metrics scrape) never wait. The lock is held only by transactions that end a job, and
-- only to their commit.
CREATE OR REPLACE FUNCTION collector_hub_count_finished_job() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF collector_hub_is_terminal(NEW.status) AND (TG_OP = 'INSERT' OR NOT collector_hub_is_terminal(OLD.status)) THEN
        LOCK TABLE job_finish_metrics IN SHARE ROW EXCLUSIVE MODE;
        PERFORM collector_hub_count_job(NEW);
    END IF;
    RETURN NULL;
END $$;
