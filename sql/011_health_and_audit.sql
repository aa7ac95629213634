-- Collector health, alerts on its changes, and the audit trail (issue 24).
--
--   collector_health   one row per collector: its last success, its run of consecutive
--                      failures (kept by a trigger when a job ends), and the state alerts were
--                      last sent for (server/health/store.py moves it under the row's lock,
--                      with the alerts' outbox rows in the same transaction: once per change)
--   webhooks           + event types job.failed, collector.failing, collector.stale,
--                      collector.recovered; + an optional list of collectors a receiver hears about
--   webhook_deliveries + a job or a collector instead of a batch; + the event's data for the
--                      events whose body is not re-read from a table (collector events, tests)
--   audit_log          every change made through the API or the CLI, refused ones too

-- ---------------------------------------------------------------------------------------------
-- Webhook event types and the collectors filter

ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['batch.completed', 'batch.failed', 'batch.cancelled', 'job.failed',
                        'collector.failing', 'collector.stale', 'collector.recovered']);
-- NULL: every collector. A batch event is sent when the batch ran any of them.
ALTER TABLE webhooks ADD COLUMN collectors text[] CHECK (collectors IS NULL OR cardinality(collectors) > 0);

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_check CHECK (
    event IN ('batch.completed', 'batch.failed', 'batch.cancelled', 'job.failed',
              'collector.failing', 'collector.stale', 'collector.recovered'));
ALTER TABLE webhook_deliveries ALTER COLUMN batch_id DROP NOT NULL;
ALTER TABLE webhook_deliveries ADD COLUMN job_id text REFERENCES job_runs (job_id) ON DELETE CASCADE;
ALTER TABLE webhook_deliveries ADD COLUMN collector text;
-- What the body says besides type, delivery_id and timestamp, for events whose subject is not
-- a row that stays as it was (a collector's health at its change; a test event).
ALTER TABLE webhook_deliveries ADD COLUMN data jsonb;
ALTER TABLE webhook_deliveries ADD COLUMN test boolean NOT NULL DEFAULT false;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_subject_check CHECK (
    test OR CASE WHEN event LIKE 'batch.%' THEN batch_id IS NOT NULL
                 WHEN event = 'job.failed' THEN job_id IS NOT NULL AND batch_id IS NOT NULL
                 ELSE collector IS NOT NULL AND data IS NOT NULL END);
CREATE UNIQUE INDEX webhook_deliveries_job_idx ON webhook_deliveries (webhook_id, job_id, event)
    WHERE job_id IS NOT NULL;

-- The batch events, as before, now honouring a receiver's collectors.
CREATE OR REPLACE FUNCTION job_batches_enqueue_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    event_name text := 'batch.' || NEW.status;
BEGIN
    IF NOT collector_hub_is_terminal(NEW.status) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (webhook_id, event, batch_id)
    SELECT w.webhook_id, event_name, NEW.batch_id
      FROM webhooks w
     WHERE w.enabled AND event_name = ANY (w.events)
       AND (w.collectors IS NULL
            OR EXISTS (SELECT 1 FROM job_runs j WHERE j.batch_id = NEW.batch_id AND j.collector = ANY (w.collectors)))
    ON CONFLICT (webhook_id, batch_id, event) DO NOTHING;
    RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Collector health: the facts, kept by the job that ends

CREATE TABLE collector_health (
    collector             text PRIMARY KEY,
    last_success_at       timestamptz,
    last_failure_at       timestamptz,
    last_error            text,
    last_job_id           text,
    consecutive_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    -- The state the alerts were last sent for, and since when; server/health/ moves it.
    state                 text NOT NULL DEFAULT 'healthy' CHECK (state IN ('healthy', 'failing', 'stale')),
    state_since           timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Stale is measured from the last success, or from here for a collector never successful.
    first_seen_at         timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- When a job ends: a success resets the failures, a failure (after its last attempt: a job
-- between attempts is queued, not failed) adds one and is a job.failed event. A cancelled job
-- says nothing about the collector's health.
CREATE FUNCTION job_runs_health() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status NOT IN ('completed', 'failed') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN
        RETURN NULL;
    END IF;
    IF NEW.status = 'completed' THEN
        INSERT INTO collector_health AS h (collector, last_success_at, last_job_id)
        VALUES (NEW.collector, coalesce(NEW.ended_at, clock_timestamp()), NEW.job_id)
        ON CONFLICT (collector) DO UPDATE SET
            last_success_at = greatest(h.last_success_at, EXCLUDED.last_success_at),
            last_job_id = EXCLUDED.last_job_id,
            consecutive_failures = 0;
        RETURN NULL;
    END IF;
    INSERT INTO collector_health AS h (collector, last_failure_at, last_error, last_job_id, consecutive_failures)
    VALUES (NEW.collector, coalesce(NEW.ended_at, clock_timestamp()), left(NEW.error, 1000), NEW.job_id, 1)
    ON CONFLICT (collector) DO UPDATE SET
        last_failure_at = EXCLUDED.last_failure_at,
        last_error = EXCLUDED.last_error,
        last_job_id = EXCLUDED.last_job_id,
        consecutive_failures = h.consecutive_failures + 1;
    INSERT INTO webhook_deliveries (webhook_id, event, batch_id, job_id, collector)
    SELECT w.webhook_id, 'job.failed', NEW.batch_id, NEW.job_id, NEW.collector
      FROM webhooks w
     WHERE w.enabled AND 'job.failed' = ANY (w.events)
       AND (w.collectors IS NULL OR NEW.collector = ANY (w.collectors))
    ON CONFLICT (webhook_id, job_id, event) WHERE job_id IS NOT NULL DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER job_runs_health AFTER INSERT OR UPDATE OF status ON job_runs
    FOR EACH ROW EXECUTE FUNCTION job_runs_health();

-- The facts of the runs before this migration.
INSERT INTO collector_health (collector, last_success_at, last_failure_at, consecutive_failures, first_seen_at)
SELECT j.collector,
       max(j.ended_at) FILTER (WHERE j.status = 'completed'),
       max(j.ended_at) FILTER (WHERE j.status = 'failed'),
       count(*) FILTER (WHERE j.status = 'failed'
                          AND j.ended_at > coalesce((SELECT max(s.ended_at) FROM job_runs s
                                                      WHERE s.collector = j.collector AND s.status = 'completed'),
                                                     '-infinity')),
       min(j.started_at)
  FROM job_runs j
 WHERE j.status IN ('completed', 'failed')
 GROUP BY j.collector;

-- ---------------------------------------------------------------------------------------------
-- The audit trail

CREATE TABLE audit_log (
    audit_id        bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Who: an API key's name (or id), 'jwt <subject>', 'open mode', a schedule, the system, a
    -- CLI user; actor_kind says which.
    actor           text NOT NULL CHECK (length(actor) BETWEEN 1 AND 300),
    actor_kind      text NOT NULL CHECK (actor_kind IN ('api_key', 'jwt', 'open', 'anonymous', 'schedule', 'system', 'cli')),
    key_id          text,
    role            text,
    action          text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    target_ids      text[] NOT NULL DEFAULT '{}',
    request_id      text,
    client_address  text,
    outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed')),
    status          integer,
    detail          text CHECK (length(detail) <= 1000)
);

CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor, audit_id DESC);
CREATE INDEX audit_log_action_idx ON audit_log (action, audit_id DESC);
CREATE INDEX audit_log_targets_idx ON audit_log USING gin (target_ids);
