"""Writing the inventory from a vendor collector process (psycopg2, one connection).

- One run of a source at a time: the writer holds a PostgreSQL advisory lock on the source for
  the whole run; a second run of the same source is refused at once (two runs never
  interleave their writes). The lock goes with the connection, so a killed collector never
  leaves it behind.
- Each page is one transaction: a run that stops anywhere leaves whole pages, never half of
  one, and memory holds one page at a time. Page commits do not wait for the disk flush
  (``synchronous_commit = off``): a PostgreSQL crash can lose the last pages of a run, never
  part of one, and the run then fails and is run again; it makes pages cost a third less. The
  final commit, which marks devices removed and the job completed, waits as usual.
- A page is read in one statement (which of its devices are stored, and the hash of the
  record each was last written with: ``record_hash``, sql/012_data_growth.sql) and written in
  at most two: devices whose record is new or changed are upserted in full, in one statement;
  devices whose record is unchanged (same hash, not removed) only get their ``last_seen_*``
  columns moved, by primary key, without sending their record. On a steady account, that is
  nearly every device. ``record_written_at`` says when a device's record was last written in
  full.
- Devices a run does not see are marked removed only by :meth:`InventoryWriter.complete`, in the
  same transaction that marks the job completed; if the job ended meanwhile (cancelled, failed
  by the watchdog), nothing is marked (ARCHITECTURE rule 14).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import zlib
from collections.abc import Sequence
from typing import Any

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from collectors.inventory_records import DeviceRecord, VendorRecord
from collectors.progress import ProgressError, apply_update_in_transaction

# pg_try_advisory_lock(key1, key2): key1 says "inventory run", key2 is the source.
log = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x696E76  # "inv"
# A run that added or removed more devices than this (autovacuum's default analyze threshold and
# scale factor) refreshes the planner's statistics itself (InventoryWriter._analyze).
ANALYZE_AFTER_ROWS = 50
ANALYZE_AFTER_SHARE = 0.1


class RunRefused(Exception):
    """Another run of the same source is writing the inventory."""


@dataclasses.dataclass(frozen=True)
class RunCounts:
    seen: int
    new: int
    gone: int


# One page is one statement with one parameter, a JSON array of rows: encoding it is one call
# into the C JSON encoder, and PostgreSQL takes the rows apart itself.
_UPSERT = """
    INSERT INTO inventory_devices AS d (
        source, vendor_id, organization_id, organization_name, display_name, host_name, dns_name,
        host_key, platform, device_class, os_name, serial_number, manufacturer, model,
        ip_addresses, mac_addresses, online, last_contact_at, raw, last_seen_job_id, last_seen_run,
        record_hash, record_written_at
    )
    SELECT %(source)s, r.vendor_id, r.organization_id, r.organization_name, r.display_name, r.host_name,
           r.dns_name, r.host_key, r.platform, r.device_class, r.os_name, r.serial_number, r.manufacturer,
           r.model, r.ip_addresses, r.mac_addresses, r.online, r.last_contact_at, r.raw, %(job_id)s, %(run_id)s,
           decode(r.record_hash, 'hex'), clock_timestamp()
      FROM json_to_recordset(%(rows)s::json) AS r (
        vendor_id text, organization_id text, organization_name text, display_name text, host_name text,
        dns_name text, host_key text, platform text, device_class text, os_name text, serial_number text,
        manufacturer text, model text, ip_addresses text[], mac_addresses text[], online boolean,
        last_contact_at timestamptz, raw jsonb, record_hash text
      )
    ON CONFLICT (source, vendor_id) DO UPDATE SET
        organization_id = EXCLUDED.organization_id,
        organization_name = EXCLUDED.organization_name,
        display_name = EXCLUDED.display_name,
        host_name = EXCLUDED.host_name,
        dns_name = EXCLUDED.dns_name,
        host_key = EXCLUDED.host_key,
        platform = EXCLUDED.platform,
        device_class = EXCLUDED.device_class,
        os_name = EXCLUDED.os_name,
        -- hardware details may come later in the run (NinjaOne's computer-systems report):
        -- keep what is known until then
        serial_number = coalesce(EXCLUDED.serial_number, d.serial_number),
        manufacturer = coalesce(EXCLUDED.manufacturer, d.manufacturer),
        model = coalesce(EXCLUDED.model, d.model),
        ip_addresses = EXCLUDED.ip_addresses,
        mac_addresses = EXCLUDED.mac_addresses,
        online = EXCLUDED.online,
        last_contact_at = EXCLUDED.last_contact_at,
        raw = EXCLUDED.raw,
        last_seen_at = clock_timestamp(),
        last_seen_job_id = EXCLUDED.last_seen_job_id,
        last_seen_run = EXCLUDED.last_seen_run,
        removed_at = NULL,
        record_hash = EXCLUDED.record_hash,
        record_written_at = EXCLUDED.record_written_at
"""

# Devices seen again with the record they were last written with: only "seen" moves.
_SEEN_AGAIN = """
    UPDATE inventory_devices
       SET last_seen_at = clock_timestamp(), last_seen_job_id = %(job_id)s, last_seen_run = %(run_id)s
     WHERE source = %(source)s AND vendor_id = ANY(%(ids)s)
"""

_DETAILS = """
    UPDATE inventory_devices d
       SET manufacturer = coalesce(v.manufacturer, d.manufacturer),
           model = coalesce(v.model, d.model),
           serial_number = coalesce(v.serial_number, d.serial_number),
           -- A value the report puts in place of another one (the device list's) means the
           -- row no longer holds what writing its record gives: the next run writes it in
           -- full again, the list's value first and the report's after it, as it always did.
           -- A value the report puts where there was none changes nothing for that: writing
           -- the record again would keep it (coalesce), so the next run may skip it.
           record_hash = CASE
               WHEN d.manufacturer <> v.manufacturer OR d.model <> v.model OR d.serial_number <> v.serial_number
               THEN NULL ELSE d.record_hash END
      FROM (VALUES %s) AS v (source, vendor_id, manufacturer, model, serial_number)
     WHERE d.source = v.source AND d.vendor_id = v.vendor_id
       -- rewrite a row only when something changed (on a steady account, nothing does)
       AND (d.manufacturer, d.model, d.serial_number) IS DISTINCT FROM
           (coalesce(v.manufacturer, d.manufacturer), coalesce(v.model, d.model),
            coalesce(v.serial_number, d.serial_number))
"""


def _row(record: DeviceRecord) -> dict[str, Any]:
    """The record's columns but ``raw``, which :func:`_encode` adds last."""
    return {
        "vendor_id": record.vendor_id,
        "organization_id": record.organization_id,
        "organization_name": record.organization_name,
        "display_name": record.display_name,
        "host_name": record.host_name,
        "dns_name": record.dns_name,
        "host_key": record.host_key,
        "platform": record.platform,
        "device_class": record.device_class,
        "os_name": record.os_name,
        "serial_number": record.serial_number,
        "manufacturer": record.manufacturer,
        "model": record.model,
        "ip_addresses": record.ip_addresses,
        "mac_addresses": record.mac_addresses,
        "online": record.online,
        "last_contact_at": record.last_contact_at.isoformat() if record.last_contact_at else None,
    }


def _encode(record: DeviceRecord, raw_json: str | None = None) -> str:
    """The record as one JSON object of the upsert's rows. ``raw`` is ``raw_json``, the text the
    vendor sent, when there is one (no second encoding of the largest field), else the record's
    ``raw`` encoded. PostgreSQL's text and jsonb refuse NUL (\\u0000): it is dropped wherever a
    vendor sent one."""
    if raw_json is None:
        raw_json = json.dumps(record.raw, separators=(",", ":"))
    columns = json.dumps(_row(record), separators=(",", ":"))
    return f'{columns[:-1]},"raw":{raw_json}}}'.replace("\\u0000", "")


def _text(item: str | VendorRecord) -> str:
    return item if isinstance(item, str) else _encode(item.normalize(), item.raw_json)


class InventoryWriter:
    """The inventory writes of one collector run; see the module docstring."""

    def __init__(self, dsn: str, source: str, job_id: str) -> None:
        self.source = source
        self.job_id = job_id
        self.run_id = 0
        self.seen = 0
        self.new = 0
        self._dsn = dsn
        self._conn: Any = None

    def open(self, expected: int | None = None) -> None:
        """Connect, take the source's lock (or raise :class:`RunRefused`) and record the run."""
        self._conn = psycopg2.connect(self._dsn, application_name=f"collector-hub-{self.source}", connect_timeout=10)
        with self._conn, self._conn.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
            cur.execute("SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self._source_key()))
            row = cur.fetchone()
            if not row or not row[0]:
                cur.execute(
                    "SELECT job_id FROM inventory_runs WHERE source = %s AND status = 'running'"
                    " ORDER BY run_id DESC LIMIT 1",
                    (self.source,),
                )
                holder = cur.fetchone()
                who = f" (job {holder[0]})" if holder else ""
                raise RunRefused(
                    f"another {self.source} run{who} is writing the inventory; this run was refused so that"
                    " two runs never interleave their writes"
                )
            # We hold the lock, so any run still marked running died without saying so.
            cur.execute(
                "UPDATE inventory_runs SET status = 'abandoned', finished_at = clock_timestamp()"
                " WHERE source = %s AND status = 'running'",
                (self.source,),
            )
            cur.execute(
                "INSERT INTO inventory_runs (source, job_id, batch_id, expected)"
                " SELECT %(source)s, %(job_id)s, (SELECT batch_id FROM job_runs WHERE job_id = %(job_id)s), %(exp)s"
                " RETURNING run_id",
                {"source": self.source, "job_id": self.job_id, "exp": expected},
            )
            self.run_id = cur.fetchone()[0]

    def _source_key(self) -> int:
        return zlib.crc32(self.source.encode()) & 0x7FFFFFFF

    def previous_count(self) -> int | None:
        """How many devices the last complete, successful run of this source saw."""
        with self._conn, self._conn.cursor() as cur:
            cur.execute(
                "SELECT devices_seen FROM inventory_runs WHERE source = %s AND status = 'completed'"
                " ORDER BY finished_at DESC LIMIT 1",
                (self.source,),
            )
            row = cur.fetchone()
            return int(row[0]) if row else None

    def write_page(self, records: Sequence[DeviceRecord | VendorRecord]) -> int:
        """Store one page in one transaction (see the module docstring); return how many of its
        devices are new (never seen, or seen again after being marked removed)."""
        if not records:
            return 0
        # A vendor page may repeat a device: count it once, and write the last record of it. A
        # DeviceRecord is identified by a hash of its encoding; a VendorRecord by its digest,
        # and it is normalized and encoded only if it has to be written.
        encoded: dict[str, tuple[str | VendorRecord, bytes]] = {}
        for record in records:
            if isinstance(record, VendorRecord):
                encoded[record.vendor_id] = (record, record.digest)
            else:
                text = _encode(record)
                encoded[record.vendor_id] = (text, hashlib.blake2b(text.encode(), digest_size=16).digest())
        ids = list(encoded)
        with self._conn, self._conn.cursor() as cur:
            cur.execute(
                "SELECT vendor_id, record_hash, removed_at IS NULL FROM inventory_devices"
                " WHERE source = %s AND vendor_id = ANY(%s)",
                (self.source, ids),
            )
            stored = {
                vendor_id: (bytes(digest) if digest is not None else None, present)
                for vendor_id, digest, present in cur.fetchall()
            }
            present = sum(1 for _, is_present in stored.values() if is_present)
            unchanged = [v for v, (_, digest) in encoded.items() if stored.get(v) == (digest, True)]
            changed = [
                f'{_text(item)[:-1]},"record_hash":"{digest.hex()}"}}'
                for v, (item, digest) in encoded.items()
                if stored.get(v) != (digest, True)
            ]
            params = {"source": self.source, "job_id": self.job_id, "run_id": self.run_id}
            if changed:
                cur.execute(_UPSERT, {**params, "rows": f"[{','.join(changed)}]"})
            if unchanged:
                cur.execute(_SEEN_AGAIN, {**params, "ids": unchanged})
            new = len(ids) - present
            self.seen += len(ids)
            self.new += new
            cur.execute(
                "UPDATE inventory_runs SET devices_seen = %s, devices_new = %s WHERE run_id = %s",
                (self.seen, self.new, self.run_id),
            )
        return int(new)

    def write_details(self, details: Sequence[tuple[str, str | None, str | None, str | None]]) -> None:
        """Hardware details (vendor id, manufacturer, model, serial number) for devices already
        written by this run; one transaction."""
        if not details:
            return
        with self._conn, self._conn.cursor() as cur:
            # VALUES needs one value per key: the last report row of a device wins.
            latest = {d[0]: (self.source, *d) for d in details}
            # One primary-key probe per row. Left to itself the planner hash-joins the page
            # against a scan of the whole source (stale statistics on a table the run just
            # filled): 50 ms a page at 50,000 devices, growing with the account.
            cur.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
            psycopg2.extras.execute_values(
                cur, _DETAILS, list(latest.values()), template="(%s, %s, %s, %s, %s)", page_size=len(latest)
            )

    def complete(self, message: str) -> RunCounts:
        """Mark removed what this complete run did not see, and the job completed with
        ``message`` (``{new}``/``{gone}``/``{seen}`` filled in), in one transaction. Raises
        :class:`ProgressError` (and marks nothing) if the job is no longer running."""
        with self._conn, self._conn.cursor() as cur:
            cur.execute("SET LOCAL synchronous_commit = on")
            cur.execute(
                "SELECT j.status FROM job_batches b JOIN job_runs j USING (batch_id)"
                " WHERE j.job_id = %s FOR UPDATE OF b",
                (self.job_id,),
            )
            row = cur.fetchone()
            if row is None or row[0] != "running":
                raise ProgressError(f"job {self.job_id} is {row[0] if row else 'gone'}; nothing was marked removed")
            cur.execute(
                "UPDATE inventory_devices SET removed_at = clock_timestamp()"
                " WHERE source = %s AND removed_at IS NULL AND last_seen_run <> %s",
                (self.source, self.run_id),
            )
            gone = cur.rowcount
            counts = RunCounts(self.seen, self.new, gone)
            cur.execute(
                "UPDATE inventory_runs SET status = 'completed', finished_at = clock_timestamp(),"
                " devices_seen = %s, devices_new = %s, devices_gone = %s WHERE run_id = %s",
                (counts.seen, counts.new, counts.gone, self.run_id),
            )
            if counts.new + counts.gone > ANALYZE_AFTER_ROWS + ANALYZE_AFTER_SHARE * counts.seen:
                self._analyze(cur)
            text = message.format(seen=f"{counts.seen:,}", new=f"{counts.new:,}", gone=f"{counts.gone:,}")
            apply_update_in_transaction(self._conn, self.job_id, "completed", 100, text)
        return counts

    def _analyze(self, cur: Any) -> None:
        """Refresh the planner's statistics of the inventory, in the transaction that completes
        the job (ANALYZE counts this transaction's own changes as done), so that whatever reads
        the inventory once the job is completed (the summary, the cross-vendor checks) is planned
        on the devices there are. Autovacuum would refresh them, but only within a minute or
        so: on statistics from before a first large run, the summary's coverage query was
        planned as a nested loop over every device for every device (35 s at 25,000 devices,
        against milliseconds). A failure here is rolled back to a savepoint and leaves the
        statistics to autovacuum; the job is completed all the same."""
        cur.execute("SAVEPOINT refresh_statistics")
        try:
            cur.execute("ANALYZE inventory_devices")
        except psycopg2.Error as exc:
            cur.execute("ROLLBACK TO SAVEPOINT refresh_statistics")
            log.warning("the inventory's statistics were not refreshed (autovacuum will): %s", str(exc).strip())
        else:
            cur.execute("RELEASE SAVEPOINT refresh_statistics")

    def close(self, status: str = "failed") -> None:
        """Record how an unfinished run ended (``failed`` or ``stopped``) and disconnect."""
        if self._conn is None:
            return
        try:
            if self.run_id and not self._conn.closed:
                with self._conn, self._conn.cursor() as cur:
                    cur.execute(
                        "UPDATE inventory_runs SET status = %s, finished_at = clock_timestamp()"
                        " WHERE run_id = %s AND status = 'running'",
                        (status, self.run_id),
                    )
        except psycopg2.Error:
            pass  # the run row stays 'running'; the next run of the source marks it abandoned
        finally:
            self._unlock()
            self._conn.close()
            self._conn = None

    def _unlock(self) -> None:
        """Give the source's lock back before disconnecting. Closing the connection alone lets
        it go only when the server's backend has seen the disconnect and exited, which on a
        loaded server came after the next run of the source asked for it: that run was refused
        as if this one still wrote (seen once in the suite, in test_inventory_writes)."""
        if self._conn is None or self._conn.closed:
            return
        try:
            self._conn.rollback()  # leave any failed transaction, so the statement can run
            with self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, self._source_key()))
            self._conn.commit()
        except psycopg2.Error:
            pass  # the backend ends with the connection, and the lock with it
