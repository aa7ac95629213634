"""The inventory writer skips what did not change: a device seen again with the same record
only has its last_seen_* columns moved; a changed, returning or hand-edited one is written in
full (collectors/inventory_store.py, sql/012_data_growth.sql)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from collectors.inventory_records import DeviceRecord, VendorRecord, record_digest
from collectors.inventory_store import InventoryWriter
from tests.support.inventory import empty_inventory, running_job

LAST_CONTACT = dt.datetime(2026, 11, 29, 10, 0, tzinfo=dt.UTC)


def device(n: int, **fields: Any) -> DeviceRecord:
    values: dict[str, Any] = {
        "vendor_id": str(n),
        "raw": {"id": n, "name": f"WS-{n:03d}", "nested": {"tags": ["a", "b"]}},
        "host_name": f"WS-{n:03d}",
        "platform": "windows",
        "ip_addresses": (f"10.0.0.{n}",),
        "last_contact_at": LAST_CONTACT,
    }
    values.update(fields)
    return DeviceRecord(**values)


def run(
    db: Any,
    database_url: str,
    job_id: str,
    pages: Sequence[Sequence[DeviceRecord | VendorRecord]],
    complete: bool = True,
) -> Any:
    writer = open_writer(db, database_url, job_id)
    try:
        news = [writer.write_page(page) for page in pages]
        counts = writer.complete("done") if complete else None
    finally:
        writer.close("stopped")
    return news, counts


def open_writer(db: Any, database_url: str, job_id: str) -> InventoryWriter:
    """An open NinjaOne writer for ``job_id`` (``ni_NNNNNNNN``), running in batch ``bc_NNNNNNNN``."""
    running_job(db, "ninja", job_id, "bc_" + job_id[3:])
    writer = InventoryWriter(database_url, "ninja", job_id)
    writer.open()
    return writer


def rows(db: Any) -> dict[str, dict[str, Any]]:
    with db.cursor() as cur:
        cur.execute(
            "SELECT vendor_id, record_written_at, last_seen_at, last_seen_job_id, last_seen_run,"
            " removed_at, last_contact_at, serial_number, raw FROM inventory_devices WHERE source = 'ninja'"
        )
        names = [c.name for c in cur.description]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cur.fetchall()}


def test_an_unchanged_record_only_moves_last_seen_and_a_changed_one_is_written_in_full(db, database_url) -> None:  # type: ignore[no-untyped-def]
    empty_inventory(db)
    run(db, database_url, "ni_00000001", [[device(n) for n in range(1, 6)], [device(n) for n in range(6, 11)]])
    first = rows(db)
    assert len(first) == 10 and all(r["record_written_at"] is not None for r in first.values())

    changed = dataclasses.replace(device(3), last_contact_at=LAST_CONTACT + dt.timedelta(hours=1))
    raw_changed = dataclasses.replace(device(7), raw={**device(7).raw, "nested": {"tags": ["a"]}})
    pages = [[device(1), device(2), changed, device(4), device(5)], [device(6), raw_changed, device(8), device(9)]]
    news, counts = run(db, database_url, "ni_00000002", pages)
    assert news == [0, 0] and (counts.seen, counts.new, counts.gone) == (9, 0, 1)
    second = rows(db)
    for vendor_id, row in second.items():
        before = first[vendor_id]
        if vendor_id == "10":  # not seen by a complete run: removed, its record untouched
            assert row["removed_at"] is not None and row["record_written_at"] == before["record_written_at"]
            continue
        # every device the run saw is seen by it, whether its record changed or not
        assert row["last_seen_job_id"] == "ni_00000002" and row["last_seen_at"] > before["last_seen_at"]
        assert row["last_seen_run"] > before["last_seen_run"] and row["removed_at"] is None
        if vendor_id in ("3", "7"):
            assert row["record_written_at"] > before["record_written_at"]
        else:
            assert row["record_written_at"] == before["record_written_at"], vendor_id
            assert row["raw"] == before["raw"] and row["last_contact_at"] == before["last_contact_at"]
    assert second["3"]["last_contact_at"] == LAST_CONTACT + dt.timedelta(hours=1)
    assert second["7"]["raw"]["nested"] == {"tags": ["a"]}


def test_a_removed_device_that_returns_unchanged_is_new_again_and_no_longer_removed(db, database_url) -> None:  # type: ignore[no-untyped-def]
    empty_inventory(db)
    run(db, database_url, "ni_00000001", [[device(n) for n in range(1, 4)]])
    run(db, database_url, "ni_00000002", [[device(1), device(2)]])
    assert rows(db)["3"]["removed_at"] is not None
    news, counts = run(db, database_url, "ni_00000003", [[device(1), device(2), device(3)]])
    assert news == [1] and (counts.new, counts.gone) == (1, 0)
    back = rows(db)["3"]
    assert back["removed_at"] is None and back["last_seen_job_id"] == "ni_00000003"


def test_a_row_changed_by_the_details_report_is_written_in_full_next_time(db, database_url) -> None:  # type: ignore[no-untyped-def]
    """The hardware details may differ from what the device list said; as before, each run
    writes the list's value first and the report's after it."""
    empty_inventory(db)
    with_serial = device(1, serial_number="LIST-1")
    run(db, database_url, "ni_00000001", [[with_serial, device(2)]])
    writer_rows = rows(db)
    assert writer_rows["1"]["serial_number"] == "LIST-1"
    writer = open_writer(db, database_url, "ni_00000002")
    writer.write_page([with_serial, device(2)])
    writer.write_details([("1", "Maker", "Model", "REPORT-1"), ("2", None, None, None)])
    after_details = rows(db)
    assert after_details["1"]["serial_number"] == "REPORT-1"
    writer.close("stopped")  # a run stopped after the report: the next writes the list's value again
    run(db, database_url, "ni_00000003", [[with_serial, device(2)]], complete=False)
    third = rows(db)
    assert third["1"]["serial_number"] == "LIST-1"
    assert third["1"]["record_written_at"] > after_details["1"]["record_written_at"]
    assert third["2"]["record_written_at"] == after_details["2"]["record_written_at"]


def test_details_that_only_fill_what_the_list_left_empty_leave_the_record_skippable(db, database_url) -> None:  # type: ignore[no-untyped-def]
    """Writing the list's record again would keep a value the report filled in (the list has
    none), so the next run with the same record writes nothing, and the value stays."""
    empty_inventory(db)
    writer = open_writer(db, database_url, "ni_00000001")
    writer.write_page([device(1), device(2)])
    writer.write_details([("1", "Maker", "Model", "REPORT-1")])
    writer.complete("done")
    writer.close()
    after_details = rows(db)
    assert after_details["1"]["serial_number"] == "REPORT-1"
    run(db, database_url, "ni_00000002", [[device(1), device(2)]])
    second = rows(db)
    assert second["1"]["serial_number"] == "REPORT-1" and second["1"]["last_seen_job_id"] == "ni_00000002"
    assert [second[v]["record_written_at"] for v in "12"] == [after_details[v]["record_written_at"] for v in "12"]


def test_a_page_that_repeats_a_device_counts_it_once_and_keeps_its_last_record(db, database_url) -> None:  # type: ignore[no-untyped-def]
    empty_inventory(db)
    later = dataclasses.replace(device(1), host_name="WS-NEW")
    news, counts = run(db, database_url, "ni_00000001", [[device(1), device(2), later]])
    assert news == [2] and counts.seen == 2
    with db.cursor() as cur:
        cur.execute("SELECT host_name FROM inventory_devices WHERE vendor_id = '1'")
        assert cur.fetchone() == ("WS-NEW",)


def test_a_vendor_record_is_normalized_and_written_only_when_its_digest_changed(db, database_url) -> None:  # type: ignore[no-untyped-def]
    """A collector hands the writer each device as the vendor sent it (its JSON text, a digest
    of that text and of the code that normalizes it): an unchanged one is neither normalized
    nor written again; the record stored is the vendor's text."""
    empty_inventory(db)
    normalized: list[int] = []

    def seen(n: int, raw_json: str | None = None, code: bytes = b"code v1") -> VendorRecord:
        text = raw_json or json.dumps(device(n).raw)

        def normalize() -> DeviceRecord:
            normalized.append(n)
            return device(n, raw={"decoded": "not stored: the text is"})

        return VendorRecord(str(n), text, record_digest(code, text), normalize)

    spaced = '{ "id": 2,  "name": "WS-002",\n "nested": {"tags": ["a", "b"]}, "nul": "x\\u0000y"}'
    run(db, database_url, "ni_00000001", [[seen(1), seen(2, spaced)]])
    first = rows(db)
    assert normalized == [1, 2] and first["1"]["raw"] == device(1).raw
    assert first["2"]["raw"] == {**device(2).raw, "nul": "xy"}  # as sent, less the NUL PostgreSQL refuses

    normalized.clear()
    news, counts = run(db, database_url, "ni_00000002", [[seen(1), seen(2, spaced), seen(3)]])
    assert normalized == [3] and news == [1] and (counts.seen, counts.new) == (3, 1)
    second = rows(db)
    assert all(second[v]["last_seen_job_id"] == "ni_00000002" for v in "123")
    assert [second[v]["record_written_at"] for v in "12"] == [first[v]["record_written_at"] for v in "12"]

    normalized.clear()  # the same vendor records, a new version of the code that normalizes them
    run(db, database_url, "ni_00000003", [[seen(1, code=b"code v2"), seen(2, spaced), seen(3)]])
    assert normalized == [1] and rows(db)["1"]["record_written_at"] > second["1"]["record_written_at"]


def test_a_closed_writer_has_given_its_lock_back_when_close_returns(db, database_url) -> None:  # type: ignore[no-untyped-def]
    """close() unlocks before it disconnects: a lock left to the disconnect is held until the
    server's backend has exited, after the next run of the source may have asked for it."""
    empty_inventory(db)
    for number in range(1, 21):
        writer = open_writer(db, database_url, f"ni_{number:08d}")
        writer.close("stopped")
        with db.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            assert cur.fetchone()[0] == 0, f"run {number}: the lock outlived close()"
