"""Fuzzing the API's operations on runs, batches, jobs and their logs, runners, the caller, the status and
the inventory (tests/support/fuzz.py says how)."""

from tests.support.fuzz import fuzz_tests

globals().update(fuzz_tests("runs"))
