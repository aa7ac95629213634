"""The fuzz modules' server and schema (tests/support/fuzz.py says how the API is fuzzed)."""

from tests.support.fuzz import fuzz_server, fuzzed_operation  # noqa: F401  (fixtures, for the modules of this package)
