"""Property: for random event sequences, what the worker serves equals the pure fold of the events."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.session import fold
from schemas.events import event_from_object
from schemas.session import encode_view
from tests.conftest import make_worker
from tests.integration.test_event_path import wait_for_session
from tests.support.events import campaign_click, logged_in, logged_out, page_view, public_set
from tests.support.rules import SAMPLE_RULES_FILE, sample_rules

pytestmark = pytest.mark.integration

KEY = "property-test-service-key-" + uuid.uuid4().hex
RULES = sample_rules()

# Keys and values the transformers react to, mixed with arbitrary ones.
keys = st.sampled_from(
    ["utm_source", "utm_campaign", "utmi_cp", "country", "postalCode", "cultureInfo", "locale",
     "storeUserEmail", "regionId", "color", "q"]
)  # fmt: skip
texts = st.sampled_from(["blackfriday", "BlackFriday", "google", "BRA", "04561000", "04561-000", "pt-BR", "",
                         "joao@example.com", "x", "tênis azul"])  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | texts
    | st.floats(allow_nan=False, allow_infinity=False, width=32),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    max_leaves=5,
)  # fmt: skip


@st.composite
def event_sequences(draw):
    sid = str(uuid.uuid4())
    events = []
    for n in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["page", "click", "public", "login", "logout"]))
        if kind == "page":
            params = draw(st.dictionaries(keys, texts, max_size=4))
            events.append(page_view(sid, f"https://shop.example/p?{urlencode(params)}", n))
        elif kind == "click":
            utm = draw(st.dictionaries(st.sampled_from(["utm_source", "utm_campaign", "utmi_cp"]), texts, max_size=3))
            events.append(campaign_click(sid, n, **utm))
        elif kind == "public":
            events.append(public_set(sid, draw(st.dictionaries(keys, json_values, min_size=1, max_size=3)), n))
        elif kind == "login":
            email = draw(st.sampled_from(["joao@example.com", "maria@example.com"]))
            tables = draw(st.lists(st.sampled_from(["vip", "b2b"]), max_size=2))
            events.append(logged_in(sid, f"u-{email[:4]}", email, n, firstName="Ana", priceTables=tables))
        else:
            events.append(logged_out(sid, n))
    return sid, events


@pytest.fixture(scope="module")
def service(kafka_bootstrap, tmp_path_factory):
    run = uuid.uuid4().hex[:8]
    data_dir = tmp_path_factory.mktemp("property")
    worker = make_worker(
        kafka_bootstrap,
        f"app-property-{run}",
        f"events-property-{run}",
        data_dir / "worker",
        data_dir / "worker.log",
        partitions=3,
        SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE),
        SESSIONS_SERVICE_KEYS=f"{KEY}=events:trusted sessions:read",
    ).start()
    with httpx.Client(base_url=worker.url, timeout=15.0, headers={"Authorization": f"Bearer {KEY}"}) as client:
        yield client
    assert worker.stop() == 0, worker.log_tail()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=event_sequences())
def test_served_state_equals_the_pure_fold(service, sequence):
    sid, events = sequence
    response = service.post("/api/events", json=events)
    assert response.status_code == 202, response.text
    served, _ = wait_for_session(service, sid, len(events))
    expected = fold((event_from_object(orjson.loads(orjson.dumps(e))) for e in events), rules=RULES)
    assert served == orjson.loads(encode_view(expected))
    assert served["meta"]["eventCount"] == len(events)
