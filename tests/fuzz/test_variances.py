"""Fuzzing the API's operations on the cross-vendor variances, exceptions, devices and the inventory
(tests/support/fuzz.py says how)."""

from tests.support.fuzz import fuzz_tests

globals().update(fuzz_tests("variances"))
