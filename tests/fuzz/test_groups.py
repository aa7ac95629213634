"""The fuzz groups cover the API: every operation the document has, streams aside, is fuzzed in
exactly one module."""

from __future__ import annotations

from tests.support.fuzz import DOCUMENT, GROUPS, REST, STREAMING_OPERATIONS, operations_of


def test_every_operation_is_in_exactly_one_group() -> None:
    documented = [op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()]
    fuzzed = [op for op in documented if op not in STREAMING_OPERATIONS]
    groups = [*GROUPS, REST]
    in_groups = [op for group in groups for op in sorted(operations_of(group))]
    assert sorted(in_groups) == sorted(fuzzed), "an operation is fuzzed twice or never"
    assert all(operations_of(group) for group in groups), "a fuzz group is empty"
    assert set(STREAMING_OPERATIONS) <= set(documented), "a streaming operation left out is not in the document"
