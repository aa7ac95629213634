"""Small pieces of the vendor collectors that are clearer tested alone."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from collectors import inventory_run, ninja, threatlocker
from collectors.inventory_records import code_fingerprint, host_key, record_digest
from collectors.inventory_run import Details, Page, ProgressText, collect
from collectors.inventory_store import RunCounts
from collectors.vendor_http import RequestLimiter, redact
from collectors.vendor_json import JsonArray, decode
from tests.fakes.ninja import FakeNinja
from tests.fakes.threatlocker import FakeThreatLocker


def test_progress_with_a_vendor_total() -> None:
    progress = ProgressText("computers", estimate=None, ceiling=99)
    assert progress.fetched(3000, 12400) == (24, "Fetched 3,000 of 12,400 computers")
    assert progress.fetched(12400, 12400) == (99, "Fetched 12,400 of 12,400 computers")  # 100 only at the end


def test_progress_estimated_from_the_previous_run_never_reaches_100_and_never_falls() -> None:
    progress = ProgressText("devices", estimate=1000, ceiling=99)
    assert progress.fetched(500, None) == (50, "Fetched 500 of about 1,000 devices")
    assert progress.fetched(1500, None) == (99, "Fetched 1,500 devices (about 1,000 expected)")
    progress = ProgressText("devices", estimate=1000, ceiling=90)
    assert progress.fetched(1000, None)[0] == 90


def test_progress_with_nothing_to_estimate_from_is_null() -> None:
    assert ProgressText("devices", estimate=None, ceiling=99).fetched(100, None) == (None, "Fetched 100 devices")


def test_host_names_match_without_domain_or_case_and_addresses_are_not_names() -> None:
    assert host_key("WS-01.corp.example") == host_key("ws-01") == "ws-01"
    assert host_key("10.1.2.3", None, "  Laptop7 ") == "laptop7"
    assert host_key(None, "", "fe80::1") is None
    assert host_key("1.2.3", "10.0.0.1.example", "x") == "1"  # not addresses: names
    assert host_key("fe80::1%eth0", "::ffff:10.0.0.1", "2001:DB8::1", "host-2001") == "host-2001"


BODIES = [
    b"[]", b" [ ]\n", b'[{"id": 1}]', b'[ {"a": [1, {"b": "],"}]} ,\n"x,]" , null ]', b'{"results": []}',
    b"12", b"\xef\xbb\xbf[1]", '["\u00e9"]'.encode("utf-16"), b"[1,]", b"[1 2]", b"[1", b"[1] x", b"[1]]",
    b"", b'[{"id": 1, "displayName": "trunc', b"\xff",
]  # fmt: skip


@pytest.mark.parametrize("body", BODIES)
def test_a_vendor_answer_decodes_as_json_loads_does_and_keeps_each_element_text(body: bytes) -> None:
    try:
        expected: object = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        with pytest.raises(type(exc)) as raised:
            decode(body)
        assert str(raised.value) == str(exc)
        return
    decoded = decode(body)
    assert decoded == expected
    if isinstance(expected, list):
        assert isinstance(decoded, JsonArray) and [json.loads(t) for t in decoded.texts] == expected


def test_a_record_digest_covers_its_text_its_context_and_the_code(tmp_path: Path) -> None:
    code = code_fingerprint(ninja.__file__)
    assert code == code_fingerprint(ninja.__file__) != code_fingerprint(threatlocker.__file__)
    assert code_fingerprint(str(tmp_path / "gone")) != code_fingerprint(str(tmp_path / "gone"))  # unreadable
    digests = {
        record_digest(code, '{"id": 1}'),
        record_digest(code, '{"id": 1}', "Org 1"),
        record_digest(code, '{"id": 1}', "Org 2"),
        record_digest(code, '{"id": 1}', ""),
        record_digest(code, '{"id":1}'),
        record_digest(code_fingerprint(threatlocker.__file__), '{"id": 1}'),
    }
    assert len(digests) == 6 and record_digest(code, '{"id": 1}', "Org 1") in digests


def test_redact_replaces_every_secret() -> None:
    assert redact("token abcd1234 and abcd1234x", ["abcd1234"]) == "token [redacted] and [redacted]x"
    assert redact("short ab", ["ab"]) == "short ab"  # too short to be a credential worth hiding


async def test_the_request_limiter_holds_the_request_over_the_limit() -> None:
    limiter = RequestLimiter(2)
    await limiter.acquire()
    await limiter.acquire()
    third = asyncio.ensure_future(limiter.acquire())
    done, _ = await asyncio.wait({third}, timeout=0.2)
    assert not done  # the third of a 2-per-minute limit waits for the window
    third.cancel()
    await RequestLimiter(0).acquire()  # 0: no limit


def test_the_fakes_records_encoded_once_are_the_bytes_of_their_answers_encoded_whole() -> None:
    ninja, threatlocker = FakeNinja(devices=30), FakeThreatLocker(computers=30)
    ninja.prepare()
    assert "[" + ", ".join(ninja.device_text(i) for i in range(30)) + "]" == json.dumps(
        [ninja.device(i) for i in range(30)]
    )
    assert (
        ", ".join(ninja.report_text(i) for i in range(30)) == json.dumps([ninja.report_row(i) for i in range(30)])[1:-1]
    )
    assert (
        ", ".join(threatlocker.computer_text(i) for i in range(30))
        == json.dumps([threatlocker.computer(i) for i in range(30)])[1:-1]
    )


class HeldSource:
    """Two pages of devices, then one of details; says when the details started being read."""

    vendor, noun, has_details = "Fake", "devices", True

    def __init__(self) -> None:
        self.details_requested = threading.Event()

    async def pages(self) -> AsyncGenerator[Page, None]:
        for _ in range(2):
            yield Page([], total=2)

    async def details(self) -> AsyncGenerator[Details, None]:
        self.details_requested.set()
        yield [("1", "Maker", "Model", "SN")]


class HeldWriter:
    """Stores nothing; the last device page waits (on the writer's thread) until the source has
    been asked for the details, or gives up."""

    seen = 0

    def __init__(self, source: HeldSource) -> None:
        self.source = source
        self.calls: list[str] = []

    def previous_count(self) -> int | None:
        return None

    def write_page(self, records: Any) -> int:
        self.seen += 1
        if self.seen == 2:
            self.calls.append(f"last page, details requested: {self.source.details_requested.wait(10)}")
        return 0

    def write_details(self, details: Any) -> None:
        self.calls.append("details")

    def complete(self, message: str) -> Any:
        return RunCounts(self.seen, 0, 0)


async def test_the_details_are_fetched_while_the_last_page_of_devices_is_stored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reports: list[tuple[Any, ...]] = []
    monkeypatch.setattr(inventory_run, "_report", lambda *args: reports.append(args))
    source = HeldSource()
    writer = HeldWriter(source)
    await collect(source, writer)  # type: ignore[arg-type]
    assert writer.calls == ["last page, details requested: True", "details"]
    assert [m for _, _, m in reports][:3] == ["Connecting to Fake", "Fetched 1 of 2 devices", "Fetched 2 of 2 devices"]
