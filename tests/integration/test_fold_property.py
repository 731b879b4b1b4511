"""Property: for random event sequences, what the worker serves equals the pure fold of the events."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from projections.session import fold
from schemas.events import event_from_object
from schemas.session import encode_view
from streams.devkit.events import page_view
from streams.devkit.paths import sample_rules
from tests.support.http import http_client
from tests.support.service_worker import TRUSTED_KEY as KEY
from tests.support.sessions import public_has, wait_for_session
from tests.support.strategies import event_sequences

pytestmark = pytest.mark.integration

RULES = sample_rules()


@pytest.fixture(scope="module")
def service(service_worker):
    headers = {"Authorization": f"Bearer {KEY}"}
    with http_client(base_url=service_worker.url, timeout=15.0, headers=headers) as client:
        yield client


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=event_sequences())
def test_served_state_equals_the_pure_fold(service, sequence):
    sid, events = sequence
    # session.erased is appended by DELETE, never posted (tests/integration/test_personal_data.py).
    events = [e for e in events if e["type"] != "session.erased"]
    # The marker comes last: once it shows, every event before it was folded or dead-lettered (a
    # cart item in another currency), and the whole document can be compared.
    events = [*events, page_view(sid, "https://shop.example/?marker=end", len(events))]
    response = service.post("/api/events", json=events)
    assert response.status_code == 202, response.text
    served, _ = wait_for_session(service, sid, public_has("marker"))
    expected = fold((event_from_object(orjson.loads(orjson.dumps(e))) for e in events), rules=RULES)
    assert served == orjson.loads(encode_view(expected))
