"""Fuzzing the API's operations on everything else: webhooks, schedules, the audit trail,
documents, console pages and probes; tests/support/fuzz.py says how."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.fuzz import (
    bounded,
    check_every_operation_reached_both_ways,
    check_the_served_document,
    schema_of,
    send_and_check,
)

GROUP = "rest"
schema = schema_of(GROUP)


def test_the_server_serves_the_fuzzed_document(fuzz_server: str) -> None:
    check_the_served_document(fuzz_server)


@schema.parametrize()
@bounded
def test_fuzz_with_an_admin_key(case: Any, fuzz_server: str) -> None:
    send_and_check(case, fuzz_server, "admin")


@schema.parametrize()
@bounded
def test_fuzz_with_no_credentials(case: Any, fuzz_server: str) -> None:
    send_and_check(case, fuzz_server, "anonymous")


def test_fuzz_reached_every_operation_both_ways(capsys: pytest.CaptureFixture[str]) -> None:
    """Runs after the two above (file order): each operation of the group got requests both ways."""
    with capsys.disabled():
        check_every_operation_reached_both_ways(GROUP)
