"""What the two OpenAPI fuzz files share (they run on two processes: each takes minutes)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation: bounded so that each file stays at about two minutes on two cores.
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    # schemathesis 4.32 renames a lazy-schema test per operation through ``node._nodeid``, which
    # pytest 9.2 no longer has (``nodeid`` reads ``_id``): give it the attribute it writes to.
    request.node._nodeid = request.node.nodeid
