"""Schemathesis hook: every schema-valid test case is a new operation, with a key of its own.

A client's contract (docs/contract.md) is one key per operation: the same key sent again with a different body is
answered 422 `key-reused`, by design. Schemathesis draws keys from the key's grammar, and the same short key
comes back with other bodies (while shrinking, say); its `positive_data_acceptance` check would then read the
contract's 422 as "valid data rejected". So a case whose headers are schema-valid gets a fresh UUID as its key,
as a well-behaved client sends. Cases with invalid headers keep the fuzzer's key, so malformed and missing keys
are still sent as generated.
"""

import uuid

import schemathesis
from schemathesis.core.parameters import ParameterLocation

KEY_HEADER = "Idempotency-Key"


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers
    if not headers or KEY_HEADER not in headers or case.meta is None:
        return
    if case.meta.is_negative_at(ParameterLocation.HEADER):
        return
    headers[KEY_HEADER] = str(uuid.uuid4())
