"""The fuzz modules' server (tests/support/fuzz.py says how the API is fuzzed)."""

from tests.support.fuzz import fuzz_server  # noqa: F401  (a fixture, for the modules of this package)
