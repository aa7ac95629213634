-- Schedules (issue 13): collectors started on a cron expression, in a time zone, by whichever
-- server process gets there first, exactly once per due time (DESIGN.md invariant 12).
--
--   schedules        the definitions, and next_due_at: the next due time not yet dealt with.
--                    A scheduler claims a due row with FOR UPDATE SKIP LOCKED, fires it and
--                    moves next_due_at past its own clock, all in one transaction.
--   schedule_fires   one row per due time dealt with (fired, or skipped and why). Its primary
--                    key (schedule_id, due_at) is the second guarantee: even a scheduler that
--                    read a stale next_due_at cannot start a due time twice.
--
-- Cron expressions and time zones are checked in Python (cronsim, zoneinfo), where the error
-- can say which field is wrong; the CHECKs here only keep the shape.

CREATE TABLE schedules (
    schedule_id      text PRIMARY KEY
                     DEFAULT 'sch_' || left(replace(gen_random_uuid()::text, '-', ''), 16)
                     CHECK (schedule_id ~ '^sch_[0-9a-f]{16}$'),
    name             text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
    collectors       text[] NOT NULL CHECK (cardinality(collectors) BETWEEN 1 AND 50),
    priority         text NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),
    cron             text NOT NULL CHECK (length(cron) BETWEEN 1 AND 200),
    timezone         text NOT NULL DEFAULT 'UTC' CHECK (length(timezone) BETWEEN 1 AND 100),
    enabled          boolean NOT NULL DEFAULT true,
    overlap          text NOT NULL DEFAULT 'skip' CHECK (overlap IN ('skip', 'queue')),
    catch_up         text NOT NULL DEFAULT 'none' CHECK (catch_up IN ('none', 'latest')),
    -- 'api': managed over the API; 'file': declared in the collectors file and upserted at
    -- start (the API may only pause and resume those).
    source           text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'file')),
    -- The file's own `enabled` as last upserted: a pause or resume over the API holds across
    -- restarts until the file's value changes.
    declared_enabled boolean,
    next_due_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- What every scheduler asks each poll: which enabled schedules are due.
CREATE INDEX schedules_due_idx ON schedules (next_due_at) WHERE enabled;

CREATE TABLE schedule_fires (
    schedule_id  text NOT NULL REFERENCES schedules (schedule_id) ON DELETE CASCADE,
    due_at       timestamptz NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('fired', 'skipped_overlap', 'skipped_invalid')),
    batch_id     text REFERENCES job_batches (batch_id) ON DELETE SET NULL,
    detail       text,
    node         text NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (schedule_id, due_at)
);

-- A batch started by a schedule names it and the due time it fired for (null for "run now").
-- No foreign key: the batch keeps saying which schedule started it after that is deleted.
ALTER TABLE job_batches
    ADD COLUMN schedule_id   text CHECK (schedule_id ~ '^sch_[0-9a-f]{16}$'),
    ADD COLUMN schedule_name text,
    ADD COLUMN scheduled_for timestamptz,
    ADD CHECK ((schedule_id IS NULL) = (schedule_name IS NULL)),
    ADD CHECK (scheduled_for IS NULL OR schedule_id IS NOT NULL);

-- The overlap check ("is a batch of this schedule still active?") and the last batch shown.
CREATE INDEX job_batches_schedule_idx ON job_batches (schedule_id, started_at DESC)
    WHERE schedule_id IS NOT NULL;
