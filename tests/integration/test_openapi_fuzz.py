"""The OpenAPI document against the real worker: served, complete, and true under fuzzing.

The document is ``streams/web/openapi.json``; the worker serves it at ``/openapi.json``. It must
list exactly the routes the app has (its event contract is checked without a broker, in
``tests/unit/test_openapi_contract.py``). schemathesis reads
it from the running worker and drives every operation with generated requests, valid and invalid
(its examples, coverage and fuzzing phases), then along the document's links (a session made, then
read and edited through its tokens); no answer may be a 5xx or differ from the document in status,
content type, headers or body schema. The events are sent once more with a trusted service key
in ``test_openapi_fuzz_trusted.py`` (a file of its own: each takes minutes, and files run in parallel).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from streams.config.settings import Settings
from streams.control.app import create_engine
from streams.devkit.paths import SAMPLE_RULES_FILE
from tests.support.http import http_client, http_get
from tests.support.openapi_fuzz import CHECKS, FUZZ, _node_id_for_schemathesis  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

DOCUMENT = Path(__file__).resolve().parents[2] / "streams" / "web" / "openapi.json"
REF = "#/components/schemas/{name}"
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def worker(service_worker):
    return service_worker  # this process's shared worker (tests/support/service_worker.py)


# schemathesis's coverage phase sends every case the schema defines, whatever max_examples says: for
# ``POST /api/events`` (a union of every event type) about 7,000 requests, most of a fuzz run's time.
# The trusted run (test_openapi_fuzz_trusted.py) sends them, with a key that accepts every type; the
# anonymous one would send the same bodies to the same validation and only adds the fuzzing phase.
TRUSTED_RUN_COVERS = {
    "include-path": "/api/events",
    "include-method": "POST",
    "phases": {"coverage": {"enabled": False}},
}


@pytest.fixture(scope="module")
def api_schema(worker):
    config = SchemathesisConfig.from_dict({"operations": [TRUSTED_RUN_COVERS]})
    return schemathesis.openapi.from_url(f"{worker.url}/openapi.json", config=config)


def operations(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS}


def test_the_worker_serves_the_document_kept_in_the_repo(worker):
    response = http_get(f"{worker.url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == orjson.loads(DOCUMENT.read_bytes())


def test_the_document_lists_every_route_of_the_app_and_no_other(tmp_path):
    # The app the worker runs, built here without touching the network: its aiohttp router is the
    # list of what the server answers.
    engine = create_engine(Settings(data_dir=tmp_path, partitions=1, web_port=1, rules_file=str(SAMPLE_RULES_FILE)))
    routes = {(route.method, route.resource.canonical) for route in engine.app.web.web_app.router.routes()}
    documented = operations(orjson.loads(DOCUMENT.read_bytes()))
    # faust adds HEAD to every view (GET without the body; 405 where the view has no GET): HTTP
    # implies it, the document lists the other methods.
    assert {route for route in routes if route[0] != "HEAD"} == documented


def test_every_documented_operation_is_routed_on_the_running_worker(worker):
    sample = {
        "session_id": str(uuid.uuid4()),
        "session_token": "not-a-token",
        "segment_token": "e30",  # {}
    }
    with http_client(base_url=worker.url, timeout=15.0) as client:
        for method, path in sorted(operations(client.get("/openapi.json").json())):
            response = client.request(method, path.format(**sample), params={"items": "*"})
            assert response.status_code not in (404, 405) or response.json()["error"]["code"] not in (
                "not_found",
                "method_not_allowed",
            ), f"{method} {path}: {response.text}"


storefront = schemathesis.pytest.from_fixture("api_schema")


@storefront.parametrize()
@FUZZ
def test_no_answer_is_a_server_error_or_breaks_the_document(case):
    case.call_and_validate(checks=CHECKS)


def test_workflows_along_the_links_no_answer_is_a_server_error_or_breaks_the_document(api_schema):
    # The document's links chain calls: a session made, then read, edited and segmented through
    # its tokens (path and cookie), so existing sessions are exercised too, not only new ones.
    class Workflow(api_schema.as_state_machine()):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs or None)

    Workflow.run(
        settings=settings(
            max_examples=40,
            stateful_step_count=8,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    )
