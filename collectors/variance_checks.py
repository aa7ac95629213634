"""The cross-vendor checks: NinjaOne against ThreatLocker, set-based in SQL, in one transaction
(docs/VARIANCES.md).

1. The devices of the latest complete, successful inventory run of each source (present, with
   a canonical host key: ``variance_host_key`` in sql/009_variances.sql, the one definition).
   A blank key matches nothing. A key held by two devices of one source is a duplicate and is
   never matched to the other side: the checks that compare a pair (spare, display name,
   organization) look only at keys held by one device on each side.
2. What they find goes into ``vc_found`` (type, subject key, details); then, in the same
   transaction, the variances are brought up to date: a new one is ``active``; one found again
   keeps an operator's acceptance, and a ``manually_fixed`` or resolved one is ``active`` again
   (its note kept); when both sources had a complete run (a complete check), one no longer
   found is ``resolved``, or ``collector_verified`` when an operator had marked it fixed. An
   accepted variance whose expiry day has passed is active again. Every change is one row of
   ``variance_history``.
3. Checks never run side by side (a transaction-level advisory lock), and a re-run changes
   nothing an operator did, only ``last_seen`` and what a check can see.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from collectors.inventory_records import SOURCES
from collectors.progress import apply_update_in_transaction
from collectors.variance_settings import VarianceSettings

# pg_advisory_xact_lock(key1, key2): key1 says "variances", key2 the checks.
LOCK_NAMESPACE = 0x766172  # "var"
CHECKS_LOCK = 1
CHECKER = "cross-vendor-checks"  # who the history names for the checks' own changes

_LATEST_RUNS = """
    SELECT DISTINCT ON (source) source, run_id, finished_at, devices_seen FROM inventory_runs
     WHERE status = 'completed' ORDER BY source, finished_at DESC, run_id DESC
"""

_DEVICES = """
    CREATE TEMP TABLE vc_devices ON COMMIT DROP AS
    SELECT d.source, d.vendor_id, variance_host_key(d.host_key, %(cut)s) AS key,
           btrim(split_part(split_part(coalesce(d.host_name, d.dns_name, d.display_name), '|', 1), '.', 1))
               AS hostname,
           d.host_name, nullif(btrim(d.display_name), '') AS display_name, d.platform, d.device_class,
           d.organization_id AS org_id,
           coalesce(d.organization_name, d.raw ->> 'organizationName', d.organization_id) AS org_name,
           loc.location,
           coalesce(d.source = 'ninja' AND (
               (%(spare_pattern)s <> '' AND (d.display_name ILIKE %(spare_like)s OR loc.location ILIKE %(spare_like)s))
               OR d.device_class = ANY(%(spare_classes)s)), false) AS spare,
           coalesce(lower(loc.location) = ANY(%(excluded_locations)s), false) AS excluded_location
      FROM inventory_devices d
      JOIN (VALUES ('ninja', %(ninja_finished)s::timestamptz), ('threatlocker', %(tl_finished)s::timestamptz))
           AS r (source, finished_at) ON r.source = d.source
      CROSS JOIN LATERAL (SELECT CASE WHEN d.source = 'ninja' THEN coalesce(
               d.raw -> 'references' -> 'location' ->> 'name', d.raw -> 'location' ->> 'name',
               d.raw ->> 'locationName') END AS location) AS loc
     -- present, and already there when the complete run ended (not added by a later, unfinished one)
     WHERE d.removed_at IS NULL AND d.first_seen_at <= r.finished_at;
    -- statistics before each next step, or the planner guesses a temporary table's size (a
    -- small sample of the join columns: ANALYZE of every column cost more than the checks)
    SET LOCAL default_statistics_target = 10;
    ANALYZE vc_devices (source, key);
    CREATE TEMP TABLE vc_keys ON COMMIT DROP AS
    SELECT key, count(*) FILTER (WHERE source = 'ninja') AS ninja_n,
           count(*) FILTER (WHERE source = 'threatlocker') AS tl_n
      FROM vc_devices WHERE key IS NOT NULL GROUP BY key;
    ANALYZE vc_keys (key);
    CREATE TEMP TABLE vc_pairs ON COMMIT DROP AS
    SELECT k.key, n.vendor_id AS n_id, n.host_name AS n_host, n.display_name AS n_display, n.org_id AS n_org_id,
           n.org_name AS n_org, n.location AS n_location, n.spare AS n_spare, n.excluded_location AS n_excluded,
           t.vendor_id AS t_id, t.host_name AS t_host, t.hostname AS t_hostname, t.display_name AS t_display,
           t.org_id AS t_org_id, t.org_name AS t_org
      FROM vc_keys k
      JOIN vc_devices n ON n.key = k.key AND n.source = 'ninja'
      JOIN vc_devices t ON t.key = k.key AND t.source = 'threatlocker'
     WHERE k.ninja_n = 1 AND k.tl_n = 1;
    ANALYZE vc_pairs (key);
    CREATE TEMP TABLE vc_found (
        type text NOT NULL, subject_key text NOT NULL, hostname text NOT NULL, organization text,
        details jsonb NOT NULL, PRIMARY KEY (type, subject_key)
    ) ON COMMIT DROP;
"""

_DEVICE_JSON = (
    "jsonb_build_object('vendor_id', d.vendor_id, 'hostname', d.host_name, 'display_name', d.display_name,"
    " 'organization', d.org_name, 'location', d.location)"
)

# (types, SQL): each check, run only when both sources it reads had a complete run.
_CHECKS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("ninja",),
        f"""INSERT INTO vc_found
        SELECT 'DUPLICATE_NINJA', d.key, min(d.hostname), min(d.org_name),
               jsonb_build_object('count', count(*), 'ninja_org_name', min(d.org_name),
                   'devices', jsonb_agg({_DEVICE_JSON} ORDER BY d.vendor_id))
          FROM vc_devices d JOIN vc_keys k USING (key) WHERE d.source = 'ninja' AND k.ninja_n > 1 GROUP BY d.key""",
    ),
    (
        ("threatlocker",),
        f"""INSERT INTO vc_found
        SELECT 'DUPLICATE_TL', d.key, min(d.hostname), min(d.org_name),
               jsonb_build_object('count', count(*), 'tl_org_name', min(d.org_name),
                   'devices', jsonb_agg({_DEVICE_JSON} ORDER BY d.vendor_id))
          FROM vc_devices d JOIN vc_keys k USING (key) WHERE d.source = 'threatlocker' AND k.tl_n > 1
         GROUP BY d.key""",
    ),
    (
        ("ninja", "threatlocker"),
        f"""INSERT INTO vc_found
        SELECT 'MISSING_NINJA', d.key, min(d.hostname), min(d.org_name),
               jsonb_build_object('tl_hostname', min(d.host_name), 'tl_org_name', min(d.org_name),
                   'devices', jsonb_agg({_DEVICE_JSON} ORDER BY d.vendor_id))
          FROM vc_devices d JOIN vc_keys k USING (key) WHERE d.source = 'threatlocker' AND k.ninja_n = 0
         GROUP BY d.key""",
    ),
    (
        ("ninja", "threatlocker"),
        f"""INSERT INTO vc_found
        SELECT 'MISSING_THREATLOCKER', d.key, min(d.hostname), min(d.org_name),
               jsonb_build_object('ninja_hostname', min(d.host_name), 'ninja_org_name', min(d.org_name),
                   'devices', jsonb_agg({_DEVICE_JSON} ORDER BY d.vendor_id))
          FROM vc_devices d JOIN vc_keys k USING (key) WHERE d.source = 'ninja' AND k.tl_n = 0
         GROUP BY d.key
        -- a spare machine, or one the agent does not run on, is right not to have it
        HAVING bool_or(NOT d.spare AND d.platform = ANY(%(agent_platforms)s))""",
    ),
    (
        ("ninja", "threatlocker"),
        """INSERT INTO vc_found
        SELECT 'SPARE_MISMATCH', p.key, p.t_hostname, coalesce(p.n_org, p.t_org),
               jsonb_build_object('tl_hostname', p.t_host, 'ninja_hostname', p.n_host, 'ninja_billing_status', 'spare',
                   'ninja_location', p.n_location, 'ninja_display_name', p.n_display, 'tl_org_name', p.t_org,
                   'ninja_org_name', p.n_org, 'ninja_device_id', p.n_id, 'tl_computer_id', p.t_id)
          FROM vc_pairs p WHERE p.n_spare AND NOT p.n_excluded""",
    ),
    (
        ("ninja", "threatlocker"),
        """INSERT INTO vc_found
        SELECT 'DISPLAY_NAME_MISMATCH', p.key, p.t_hostname, coalesce(p.n_org, p.t_org),
               jsonb_build_object('tl_hostname', p.t_hostname, 'ninja_hostname', p.n_host,
                   'tl_display_name', p.t_display, 'ninja_display_name', p.n_display, 'tl_org_name', p.t_org,
                   'ninja_org_name', p.n_org, 'ninja_device_id', p.n_id, 'tl_computer_id', p.t_id)
          FROM vc_pairs p
         WHERE p.t_display IS NOT NULL AND lower(coalesce(p.n_display, '')) <> lower(p.t_display)
           -- ThreatLocker's default naming: NinjaOne has no display name and ThreatLocker's is
           -- the machine's own name
           AND NOT (p.n_display IS NULL AND (lower(p.t_display) = lower(btrim(coalesce(p.t_host, '')))
                                             OR variance_host_key(p.t_display, %(cut)s) = p.key))""",
    ),
    (
        ("ninja", "threatlocker"),
        """WITH orgs AS (
            SELECT DISTINCT n_org_id, n_org, t_org_id, t_org FROM vc_pairs
             WHERE n_org IS NOT NULL AND t_org IS NOT NULL
        ), classified AS (
            SELECT o.*, CASE
                WHEN lower(o.n_org) = lower(o.t_org) THEN NULL
                WHEN EXISTS (SELECT 1 FROM variance_organization_map m
                              WHERE lower(m.ninja_organization) IN (lower(o.n_org_id), lower(o.n_org))
                                AND lower(m.threatlocker_organization) IN (lower(o.t_org_id), lower(o.t_org))) THEN NULL
                WHEN EXISTS (SELECT 1 FROM variance_organization_map m
                              WHERE lower(m.threatlocker_organization) IN (lower(o.t_org_id), lower(o.t_org)))
                    THEN 'different_organization'
                ELSE 'unmapped_organization' END AS mapping
              FROM orgs o
        )
        INSERT INTO vc_found
        SELECT 'ORG_MISMATCH', p.key, p.t_hostname, p.n_org,
               jsonb_build_object('mapping', c.mapping, 'tl_hostname', p.t_hostname, 'ninja_hostname', p.n_host,
                   'tl_org_name', p.t_org, 'ninja_org_name', p.n_org, 'tl_org_id', p.t_org_id,
                   'ninja_org_id', p.n_org_id, 'ninja_device_id', p.n_id, 'tl_computer_id', p.t_id)
          FROM vc_pairs p
          JOIN classified c ON (c.n_org_id, c.n_org, c.t_org_id, c.t_org)
                               IS NOT DISTINCT FROM (p.n_org_id, p.n_org, p.t_org_id, p.t_org)
         WHERE c.mapping IS NOT NULL""",
    ),
)

_EXPIRE = """
    WITH expired AS (
        UPDATE variances SET status = 'active', updated_by = %(actor)s, updated_at = now()
         WHERE status = 'accepted' AND expires_on < %(today)s RETURNING id, expires_on)
    INSERT INTO variance_history (variance_id, changed_by, from_status, to_status, note, check_id)
    SELECT id, %(actor)s, 'accepted', 'active', 'the acceptance expired after ' || expires_on, %(check_id)s
      FROM expired
"""

_SEEN_AGAIN = """
    WITH old AS (
        SELECT v.id, v.status FROM variances v JOIN vc_found f USING (type, subject_key) FOR UPDATE OF v
    ), changed AS (
        UPDATE variances v
           SET last_seen = now(), last_check_id = %(check_id)s, details = f.details, hostname = f.hostname,
               organization = f.organization,
               status = CASE WHEN old.status IN ('resolved', 'collector_verified', 'manually_fixed')
                             THEN 'active' ELSE old.status END,
               resolved_at = CASE WHEN old.status IN ('active', 'accepted') THEN v.resolved_at END,
               resolved_by = CASE WHEN old.status IN ('active', 'accepted') THEN v.resolved_by END
          FROM old, vc_found f
         WHERE v.id = old.id AND f.type = v.type AND f.subject_key = v.subject_key
        RETURNING v.id, old.status AS from_status, v.status AS to_status
    )
    INSERT INTO variance_history (variance_id, changed_by, from_status, to_status, note, check_id)
    SELECT id, %(actor)s, from_status, to_status,
           CASE from_status WHEN 'manually_fixed' THEN 'still found after the manual fix (its note is kept)'
                            ELSE 'found again' END, %(check_id)s
      FROM changed WHERE from_status <> to_status
    RETURNING from_status
"""

_NEW = """
    WITH added AS (
        INSERT INTO variances (type, subject_key, hostname, organization, details, first_seen, last_seen, last_check_id)
        SELECT f.type, f.subject_key, f.hostname, f.organization, f.details, now(), now(), %(check_id)s
          FROM vc_found f
         WHERE NOT EXISTS (SELECT 1 FROM variances v WHERE v.type = f.type AND v.subject_key = f.subject_key)
        RETURNING id)
    INSERT INTO variance_history (variance_id, changed_by, from_status, to_status, note, check_id)
    SELECT id, %(actor)s, NULL, 'active', 'found', %(check_id)s FROM added
"""

_GONE = """
    WITH gone AS (
        SELECT v.id, v.status FROM variances v
         WHERE v.status IN ('active', 'accepted', 'manually_fixed')
           AND NOT EXISTS (SELECT 1 FROM vc_found f WHERE f.type = v.type AND f.subject_key = v.subject_key)
           FOR UPDATE
    ), changed AS (
        UPDATE variances v
           SET status = CASE WHEN gone.status = 'manually_fixed' THEN 'collector_verified' ELSE 'resolved' END,
               resolved_at = coalesce(v.resolved_at, now()), resolved_by = coalesce(v.resolved_by, %(actor)s)
          FROM gone WHERE v.id = gone.id
        RETURNING v.id, gone.status AS from_status, v.status AS to_status
    )
    INSERT INTO variance_history (variance_id, changed_by, from_status, to_status, note, check_id)
    SELECT id, %(actor)s, from_status, to_status,
           CASE to_status WHEN 'collector_verified' THEN 'the check confirms the manual fix'
                          ELSE 'no longer found' END, %(check_id)s
      FROM changed
    RETURNING to_status
"""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    check_id: int
    complete: bool
    ninja_devices: int
    threatlocker_devices: int
    found: int
    opened: int
    resolved: int
    verified: int
    reopened: int
    missing_sources: tuple[str, ...]

    def message(self) -> str:
        text = (
            f"Compared {self.ninja_devices:,} NinjaOne and {self.threatlocker_devices:,} ThreatLocker devices:"
            f" {self.found:,} variances ({self.opened:,} new, {self.resolved:,} resolved,"
            f" {self.verified:,} fixes confirmed, {self.reopened:,} fixes still found)"
        )
        if self.missing_sources:
            text += f"; no complete run of {', '.join(self.missing_sources)} yet, so nothing was resolved"
        return text


def _count(cur: Any, sql: str, params: dict[str, Any]) -> list[Any]:
    cur.execute(sql, params)
    return [row[0] for row in cur.fetchall()] if cur.description else []


def run_checks(
    conn: Any,
    settings: VarianceSettings,
    *,
    job_id: str | None = None,
    actor: str = CHECKER,
    today: dt.date | None = None,
) -> CheckResult:
    """Run every check in one transaction on ``conn`` (psycopg2) and bring the variances up to
    date. With ``job_id``, the job is completed in the same transaction (if it is no longer
    running, ``ProgressError`` and nothing is written). ``today`` (UTC) decides expiries."""
    with conn, conn.cursor() as cur:
        cur.execute("SET LOCAL TimeZone = 'UTC'")
        cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_NAMESPACE, CHECKS_LOCK))
        cur.execute(_LATEST_RUNS)
        runs = {row[0]: row for row in cur.fetchall()}
        missing = tuple(s for s in SOURCES if s not in runs)
        complete = not missing
        cur.execute(
            "INSERT INTO variance_checks (job_id, ninja_run_id, threatlocker_run_id, complete, settings)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING check_id",
            (
                job_id,
                runs["ninja"][1] if "ninja" in runs else None,
                runs["threatlocker"][1] if "threatlocker" in runs else None,
                complete,
                json.dumps(settings.as_json()),
            ),
        )
        check_id = int(cur.fetchone()[0])
        pattern = settings.spare_pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params: dict[str, Any] = {
            "cut": settings.netbios_cut,
            "spare_pattern": settings.spare_pattern,
            "spare_like": f"%{pattern}%",
            "spare_classes": list(settings.spare_device_classes),
            "excluded_locations": [loc.lower() for loc in settings.excluded_locations],
            "agent_platforms": list(settings.agent_platforms),
            # a source without a complete run contributes no devices
            "ninja_finished": runs["ninja"][2] if "ninja" in runs else None,
            "tl_finished": runs["threatlocker"][2] if "threatlocker" in runs else None,
            "check_id": check_id,
            "actor": actor,
            "today": today,
        }
        cur.execute(_DEVICES, params)
        for needs, sql in _CHECKS:
            if all(source in runs for source in needs):
                cur.execute(sql, params)
        cur.execute("ANALYZE vc_found (type, subject_key)")
        cur.execute(
            "SELECT count(*) FILTER (WHERE source = 'ninja'), count(*) FILTER (WHERE source <> 'ninja'),"
            " (SELECT count(*) FROM vc_found) FROM vc_devices"
        )
        ninja_n, tl_n, found = (int(v) for v in cur.fetchone())
        if today is None:
            cur.execute("SELECT (now() AT TIME ZONE 'UTC')::date")
            params["today"] = cur.fetchone()[0]
        cur.execute(_EXPIRE, params)
        again = _count(cur, _SEEN_AGAIN, params)
        cur.execute(_NEW, params)
        opened = cur.rowcount
        gone = _count(cur, _GONE, params) if complete else []
        result = CheckResult(
            check_id=check_id,
            complete=complete,
            ninja_devices=ninja_n,
            threatlocker_devices=tl_n,
            found=found,
            opened=opened,
            resolved=sum(1 for s in gone if s == "resolved"),
            verified=sum(1 for s in gone if s == "collector_verified"),
            reopened=sum(1 for s in again if s == "manually_fixed"),
            missing_sources=missing,
        )
        cur.execute(
            "UPDATE variance_checks SET finished_at = clock_timestamp(), ninja_devices = %s, threatlocker_devices = %s,"
            " found = %s, opened = %s, resolved = %s, verified = %s, reopened = %s, message = %s WHERE check_id = %s",
            (
                ninja_n,
                tl_n,
                found,
                opened,
                result.resolved,
                result.verified,
                result.reopened,
                result.message(),
                check_id,
            ),
        )
        if complete:  # the variance.* webhooks of what it opened and resolved (sql/015)
            cur.execute("SELECT variance_enqueue_webhooks(%s)", (check_id,))
        if job_id is not None:
            apply_update_in_transaction(conn, job_id, "completed", 100, result.message())
    return result
