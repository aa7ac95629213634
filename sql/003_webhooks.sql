-- Signed webhooks on batch completion (issue 4), delivered through a transactional outbox
-- (docs/ARCHITECTURE.md, rule 10).
--
--   webhooks            receivers: url, events, secret (+ the previous one for 24 h after a
--                       rotation), enabled or disabled with a reason
--   webhook_deliveries  the outbox: one row per (terminal batch, subscribed receiver), written
--                       by a trigger in the same transaction that makes the batch terminal;
--                       dispatchers on every node claim due rows with FOR UPDATE SKIP LOCKED
--   webhook_attempts    every HTTP attempt of a delivery, with its outcome

CREATE TABLE webhooks (
    webhook_id                  text PRIMARY KEY
                                DEFAULT 'wh_' || left(replace(gen_random_uuid()::text, '-', ''), 16)
                                CHECK (webhook_id ~ '^wh_[0-9a-f]{16}$'),
    url                         text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events                      text[] NOT NULL
                                CHECK (cardinality(events) > 0
                                       AND events <@ ARRAY['batch.completed', 'batch.failed', 'batch.cancelled']),
    description                 text CHECK (length(description) <= 500),
    -- 'api': created with POST /api/webhooks; 'settings': declared in COLLECTOR_HUB_WEBHOOKS
    -- and upserted at start (the API refuses to change those).
    source                      text NOT NULL DEFAULT 'api' CHECK (source IN ('api', 'settings')),
    enabled                     boolean NOT NULL DEFAULT true,
    disabled_reason             text,
    disabled_at                 timestamptz,
    -- First failed attempt since the last success; a receiver failing for longer than
    -- COLLECTOR_HUB_WEBHOOK_DISABLE_AFTER is disabled.
    failing_since               timestamptz,
    secret                      text NOT NULL CHECK (secret ~ '^whsec_[A-Za-z0-9+/]{43}=$'),
    previous_secret             text CHECK (previous_secret ~ '^whsec_[A-Za-z0-9+/]{43}=$'),
    previous_secret_expires_at  timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at                  timestamptz NOT NULL DEFAULT clock_timestamp(),
    CHECK ((previous_secret IS NULL) = (previous_secret_expires_at IS NULL))
);

-- Settings-declared receivers are keyed by their URL.
CREATE UNIQUE INDEX webhooks_declared_url_idx ON webhooks (url) WHERE source = 'settings';

CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY
                     DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', '')
                     CHECK (delivery_id ~ '^msg_[0-9a-f]{32}$'),
    webhook_id       text NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    event            text NOT NULL CHECK (event IN ('batch.completed', 'batch.failed', 'batch.cancelled')),
    batch_id         text NOT NULL REFERENCES job_batches (batch_id) ON DELETE CASCADE,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    -- The exact bytes sent, built by the first attempt and kept so that every retry sends
    -- (and signs) the same body.
    body             bytea,
    attempt_count    integer NOT NULL DEFAULT 0,
    -- Attempts since the schedule last started (a redelivery starts it again).
    round_attempts   integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- Set while a dispatcher holds the delivery (its lease ends at next_attempt_at); results
    -- are only recorded by the holder of the token.
    claim_token      text,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at     timestamptz,
    UNIQUE (webhook_id, batch_id, event)
);

-- The claim query: due pending rows, oldest first.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC);

CREATE TABLE webhook_attempts (
    attempt_id       bigserial PRIMARY KEY,
    delivery_id      text NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt_number   integer NOT NULL,
    attempted_at     timestamptz NOT NULL,
    duration_ms      integer NOT NULL CHECK (duration_ms >= 0),
    url              text NOT NULL,
    response_status  integer,
    response_body    text,      -- the first 1 KiB, decoded leniently
    error            text,      -- network error, timeout, refused address, redirect...
    UNIQUE (delivery_id, attempt_number)
);

-- The outbox write: in the transaction that makes the batch terminal (the batch refresh
-- trigger on job_runs updates job_batches), one delivery per enabled receiver subscribed to
-- the event. Terminal batches never change status again (their jobs are final), and the
-- unique key makes a second firing harmless anyway.
CREATE FUNCTION job_batches_enqueue_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
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
    ON CONFLICT (webhook_id, batch_id, event) DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER job_batches_enqueue_webhooks AFTER INSERT OR UPDATE OF status ON job_batches
    FOR EACH ROW EXECUTE FUNCTION job_batches_enqueue_webhooks();
