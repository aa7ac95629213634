-- Cross-vendor variances (docs/VARIANCES.md): what the checks found when they compared the
-- NinjaOne and ThreatLocker inventories, one row per (type, subject) that lives from the check
-- that first found it on; what operators did with it; which inventory runs each check read.
--
-- variance_host_key is the one canonical host key: every check and every look-up by host name
-- (mark-fixed-by-hostname, device search) goes through it, so two checks can never disagree on
-- whether two names are one machine.

CREATE FUNCTION variance_host_key(name text, netbios_cut boolean) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN nullif(
        btrim(left(btrim(lower(split_part(split_part(name, '|', 1), '.', 1))),
                   CASE WHEN netbios_cut THEN 15 ELSE 500 END)),
        '');

-- One row per run of the checks. complete: both sources had a complete inventory run and every
-- check ran; only a complete check resolves what it no longer finds.
CREATE TABLE variance_checks (
    check_id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id                text,
    started_at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at           timestamptz,
    complete              boolean NOT NULL DEFAULT false,
    ninja_run_id          bigint REFERENCES inventory_runs (run_id) ON DELETE SET NULL,
    threatlocker_run_id   bigint REFERENCES inventory_runs (run_id) ON DELETE SET NULL,
    ninja_devices         integer NOT NULL DEFAULT 0,
    threatlocker_devices  integer NOT NULL DEFAULT 0,
    found                 integer NOT NULL DEFAULT 0,
    opened                integer NOT NULL DEFAULT 0,
    resolved              integer NOT NULL DEFAULT 0,
    verified              integer NOT NULL DEFAULT 0,
    reopened              integer NOT NULL DEFAULT 0,
    settings              jsonb NOT NULL DEFAULT '{}',
    message               text
);

CREATE INDEX variance_checks_complete_idx ON variance_checks (finished_at DESC) WHERE complete;

CREATE TABLE variances (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type          text NOT NULL CHECK (type IN ('MISSING_NINJA', 'MISSING_THREATLOCKER', 'DUPLICATE_TL',
                      'DUPLICATE_NINJA', 'SPARE_MISMATCH', 'DISPLAY_NAME_MISMATCH', 'ORG_MISMATCH')),
    -- the canonical host key of the machine it is about
    subject_key   text NOT NULL CHECK (subject_key <> ''),
    hostname      text NOT NULL,  -- a readable name of the machine, as a vendor spells it
    organization  text,
    details       jsonb NOT NULL DEFAULT '{}',
    first_seen    timestamptz NOT NULL,
    last_seen     timestamptz NOT NULL,
    last_check_id bigint REFERENCES variance_checks (check_id) ON DELETE SET NULL,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'resolved', 'manually_fixed', 'collector_verified', 'accepted')),
    note          text,
    reason        text,    -- why it was accepted
    expires_on    date,    -- an accepted variance is active again after this day
    update_type   text,
    old_value     jsonb,
    new_value     jsonb,
    updated_by    text,
    updated_at    timestamptz,
    resolved_at   timestamptz,
    resolved_by   text,
    UNIQUE (type, subject_key),
    CHECK (status <> 'accepted' OR reason IS NOT NULL)
);

CREATE INDEX variances_status_idx ON variances (status, type);
CREATE INDEX variances_subject_idx ON variances (subject_key);
CREATE INDEX variances_last_seen_idx ON variances (last_seen);

-- Every change of a variance: found, resolved, fixed, verified, accepted, reopened. Reports by
-- date are answered from here (the status a variance had at the end of that day).
CREATE TABLE variance_history (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    variance_id  bigint NOT NULL REFERENCES variances (id) ON DELETE CASCADE,
    changed_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    changed_by   text NOT NULL,
    from_status  text,  -- null when the variance was first found
    to_status    text NOT NULL,
    note         text,
    check_id     bigint REFERENCES variance_checks (check_id) ON DELETE SET NULL
);

CREATE INDEX variance_history_variance_idx ON variance_history (variance_id, changed_at DESC, id DESC);
CREATE INDEX variance_history_changed_idx ON variance_history (changed_at);

-- Which NinjaOne organization a ThreatLocker organization is (by id or by name, as each vendor
-- spells it). Organizations whose names are equal (ignoring case) need no row.
CREATE TABLE variance_organization_map (
    ninja_organization         text NOT NULL CHECK (ninja_organization <> ''),
    threatlocker_organization  text NOT NULL CHECK (threatlocker_organization <> ''),
    updated_by                 text NOT NULL,
    updated_at                 timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (threatlocker_organization, ninja_organization)
);
