"""Fuzzing the API's operations on everything else: webhooks, schedules, the audit trail,
documents, console pages and probes (tests/support/fuzz.py says how)."""

from tests.support.fuzz import fuzz_tests

globals().update(fuzz_tests("rest"))
