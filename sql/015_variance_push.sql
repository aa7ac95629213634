-- Variances pushed live and sent as webhooks (issue 23).
--
--   variance_history  + a NOTIFY per transaction that changes a variance: live push re-reads the
--                       changes after each follower's seq (server/variances/live.py)
--   webhooks          + event types variance.opened and variance.resolved; + variance_digest (a
--                       receiver that wants one delivery per checks run, listing the variances,
--                       instead of one per variance)
--   webhook_deliveries  the variance events carry the check and the variances' ids in data
--   variance_enqueue_webhooks(check)  called by a complete checks run in its own transaction

CREATE FUNCTION variance_history_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A wake-up only (docs/ARCHITECTURE.md, rule 1); identical payloads of one transaction are
    -- sent once.
    PERFORM pg_notify('collector_hub', json_build_object('kind', 'variances')::text);
    RETURN NULL;
END $$;

CREATE TRIGGER variance_history_notify AFTER INSERT ON variance_history
    FOR EACH STATEMENT EXECUTE FUNCTION variance_history_notify();

ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['batch.completed', 'batch.failed', 'batch.cancelled', 'job.failed',
                        'collector.failing', 'collector.stale', 'collector.recovered',
                        'variance.opened', 'variance.resolved']);
ALTER TABLE webhooks ADD COLUMN variance_digest boolean NOT NULL DEFAULT false;

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_event_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_event_check CHECK (
    event IN ('batch.completed', 'batch.failed', 'batch.cancelled', 'job.failed',
              'collector.failing', 'collector.stale', 'collector.recovered',
              'variance.opened', 'variance.resolved'));
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_subject_check;
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_subject_check CHECK (
    test OR CASE WHEN event LIKE 'batch.%' THEN batch_id IS NOT NULL
                 WHEN event = 'job.failed' THEN job_id IS NOT NULL AND batch_id IS NOT NULL
                 WHEN event LIKE 'variance.%' THEN data ? 'check_id' AND data ? 'variance_ids'
                 ELSE collector IS NOT NULL AND data IS NOT NULL END);

-- What a complete checks run opened (new, or active again) and resolved (gone, or confirmed
-- fixed), as deliveries: per receiver one per variance, or one digest. A first complete run
-- (no complete run before it) always sends digests: a first look at an estate finds every gap
-- it has, and ten thousand deliveries would bury the receiver. Returns the deliveries written.
CREATE FUNCTION variance_enqueue_webhooks(p_check bigint) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    first_run boolean;
    ev text;
    ids bigint[];
    n integer;
    written integer := 0;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM variance_checks WHERE check_id = p_check AND complete) THEN
        RETURN 0;  -- only a complete run says what opened and resolved
    END IF;
    first_run := NOT EXISTS (SELECT 1 FROM variance_checks WHERE complete AND check_id < p_check);
    FOREACH ev IN ARRAY ARRAY['variance.opened', 'variance.resolved'] LOOP
        SELECT array_agg(DISTINCT h.variance_id ORDER BY h.variance_id) INTO ids
          FROM variance_history h
         WHERE h.check_id = p_check
           AND h.from_status IS DISTINCT FROM h.to_status
           AND CASE WHEN ev = 'variance.opened' THEN h.to_status = 'active'
                    ELSE h.to_status IN ('resolved', 'collector_verified') END;
        CONTINUE WHEN ids IS NULL;
        INSERT INTO webhook_deliveries (webhook_id, event, data)
        SELECT w.webhook_id, ev, jsonb_build_object('check_id', p_check, 'digest', true, 'variance_ids', to_jsonb(ids))
          FROM webhooks w
         WHERE w.enabled AND ev = ANY (w.events) AND (w.variance_digest OR first_run);
        GET DIAGNOSTICS n = ROW_COUNT;
        written := written + n;
        INSERT INTO webhook_deliveries (webhook_id, event, data)
        SELECT w.webhook_id, ev, jsonb_build_object('check_id', p_check, 'digest', false, 'variance_ids', jsonb_build_array(v.id))
          FROM webhooks w CROSS JOIN unnest(ids) AS v (id)
         WHERE w.enabled AND ev = ANY (w.events) AND NOT (w.variance_digest OR first_run);
        GET DIAGNOSTICS n = ROW_COUNT;
        written := written + n;
    END LOOP;
    RETURN written;
END $$;
