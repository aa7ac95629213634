-- The device inventory that the vendor collectors (ninja, threatlocker) fill, page by page.
--
-- inventory_runs: one row per collector run that wrote to the inventory. A device's
-- last_seen_run says which run saw it last; a device that a COMPLETE, successful run did not
-- see is marked removed (removed_at), never deleted (DESIGN.md invariant 14). Runs that fail
-- or are cancelled only add and update.

CREATE TABLE inventory_runs (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        text NOT NULL,
    job_id        text NOT NULL,
    batch_id      text,
    status        text NOT NULL DEFAULT 'running'
                  CHECK (status IN ('running', 'completed', 'failed', 'stopped', 'abandoned')),
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    devices_seen  integer NOT NULL DEFAULT 0,
    devices_new   integer NOT NULL DEFAULT 0,
    devices_gone  integer NOT NULL DEFAULT 0,
    expected      integer  -- the vendor's total when it gives one
);

CREATE INDEX inventory_runs_source_idx ON inventory_runs (source, status, finished_at DESC);

CREATE TABLE inventory_devices (
    source             text NOT NULL,
    vendor_id          text NOT NULL,
    organization_id    text,
    organization_name  text,
    display_name       text,
    host_name          text,
    dns_name           text,
    -- lower-case host name without its domain: how the two sources' devices are matched
    host_key           text,
    platform           text NOT NULL DEFAULT 'other',
    device_class       text,
    os_name            text,
    serial_number      text,
    manufacturer       text,
    model              text,
    ip_addresses       text[] NOT NULL DEFAULT '{}',
    mac_addresses      text[] NOT NULL DEFAULT '{}',
    online             boolean,
    last_contact_at    timestamptz,
    raw                jsonb NOT NULL,
    first_seen_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    last_seen_job_id   text NOT NULL,
    last_seen_run      bigint NOT NULL,
    removed_at         timestamptz,
    PRIMARY KEY (source, vendor_id)
) WITH (fillfactor = 70);  -- room on each page, so a run's update of a row can stay on its page (HOT)

CREATE INDEX inventory_devices_present_host_idx ON inventory_devices (host_key, source) WHERE removed_at IS NULL;
