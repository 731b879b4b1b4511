"""The OpenAPI fuzz with a trusted service key: the ``session.*``/``auth.*`` event types accepted
rather than refused, and the service read (``/api/v1/...``) with a key that has its scope. The
document, the checks and the anonymous fuzz: ``test_openapi_fuzz.py``."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig

from tests.support.openapi_fuzz import CHECKS, FUZZ, _node_id_for_schemathesis  # noqa: F401 - the fixture
from tests.support.service_worker import TRUSTED_KEY

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trusted_api_schema(service_worker):
    config = SchemathesisConfig.from_dict({"auth": {"openapi": {"serviceKey": {"bearer": TRUSTED_KEY}}}})
    return schemathesis.openapi.from_url(f"{service_worker.url}/openapi.json", config=config)


# The trusted event types, and the service read (which answers 401 to everyone else).
trusted = schemathesis.pytest.from_fixture("trusted_api_schema").include(path_regex=r"^/api/(events$|v1/)")


@trusted.parametrize()
@FUZZ
def test_trusted_events_no_answer_is_a_server_error_or_breaks_the_document(case):
    case.call_and_validate(checks=CHECKS)
