"""Fuzzing the API's operations on the cross-vendor variances, exceptions and devices
(tests/support/fuzz.py says how)."""

from tests.support.fuzz import fuzz_tests

globals().update(fuzz_tests("variances"))
