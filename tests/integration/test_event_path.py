"""One event end to end: HTTP intake -> Kafka -> faust agent -> RocksDB table -> HTTP read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from projections.session import rfc3339
from streams.config.settings import Settings
from streams.devkit.events import at, cart_item_added, new_session_id, page_view
from streams.devkit.workers import SERVICE_HEADERS
from tests.support.dead_letters import headers, read_dead_letters, reason
from tests.support.http import http_client
from tests.support.sessions import public_has, wait_for_session

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker(service_worker):
    return service_worker  # this process's shared worker (tests/support/service_worker.py)


@pytest.fixture
def client(worker):
    with http_client(base_url=worker.url, timeout=10.0) as c:
        yield c


def test_a_page_view_is_folded_and_served(client):
    # How fast is measured by ``make bench`` (event-to-visible p99), not by a wall-clock limit here.
    sid = new_session_id()
    response = client.post("/api/events", json=page_view(sid, "https://shop.example/p?utm_source=google&cart=3"))
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1

    document, _ = wait_for_session(client, sid, 1)
    assert document["id"] == sid
    assert document["namespaces"]["public"] == {"utm_source": {"value": "google"}, "cart": {"value": "3"}}
    assert document["meta"]["eventCount"] == 1
    assert document["meta"]["firstEventTime"] == document["meta"]["lastEventTime"] == at(0)


def test_a_batch_folds_in_order_per_session(client):
    a, b = new_session_id(), new_session_id()
    batch = [
        page_view(a, "https://s/?step=1", 0),
        page_view(b, "https://s/?other=x", 1),
        page_view(a, "https://s/?step=2&extra=y", 2),
        page_view(a, "https://s/?step=3", 3),
    ]
    response = client.post("/api/events", json=batch)
    assert response.status_code == 202
    assert response.json()["accepted"] == 4
    doc_a, _ = wait_for_session(client, a, 3)
    doc_b, _ = wait_for_session(client, b, 1)
    assert doc_a["namespaces"]["public"] == {"step": {"value": "3"}, "extra": {"value": "y"}}
    assert doc_a["meta"]["lastEventTime"] == at(3)
    assert doc_b["namespaces"]["public"] == {"other": {"value": "x"}}


def test_the_api_fills_id_and_time_when_the_emitter_leaves_them_out(client):
    sid = new_session_id()
    minimal = {"type": "navigation.page_viewed", "subject": sid, "data": {"url": "https://s/?m=1"}}
    response = client.post("/api/events", json=minimal)
    assert response.status_code == 202
    [event_id] = response.json()["ids"]
    assert len(event_id) == 36
    document, _ = wait_for_session(client, sid, 1)
    assert document["namespaces"]["public"] == {"m": {"value": "1"}}


def test_unknown_session_is_a_json_404(client):
    response = client.get(f"/api/v1/sessions/{new_session_id()}", headers=SERVICE_HEADERS)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "session_not_found"


def test_a_malformed_session_id_is_a_400_naming_it(client):
    response = client.get("/api/v1/sessions/not-a-session", headers=SERVICE_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["details"][0]["path"] == "session_id"


def test_an_invalid_event_is_a_400_naming_the_field_and_nothing_is_appended(client):
    sid = new_session_id()
    good = page_view(sid, "https://s/?ok=1")
    bad = page_view(sid, "https://s/")
    del bad["data"]["url"]
    response = client.post("/api/events", json=[good, bad])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_event"
    assert error["details"] == [{"index": 1, "path": "$.data.url", "message": "missing required field `url`"}]
    # All or nothing: the good event of the rejected batch was not appended either. A later event
    # for the same session (the marker: folded after anything appended before it) is its only one.
    assert client.post("/api/events", json=page_view(sid, "https://s/?later=1")).status_code == 202
    document, _ = wait_for_session(client, sid, public_has("later"))
    assert document["meta"]["eventCount"] == 1
    assert document["namespaces"]["public"] == {"later": {"value": "1"}}


@pytest.mark.parametrize(
    ("content", "headers", "status", "code"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "malformed_json"),
        (b"url=x", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        (b"[]", {"content-type": "application/json"}, 400, "empty_batch"),
        (b"x" * 1_048_577, {"content-type": "application/json"}, 413, "payload_too_large"),
        (b"[" * 129 + b"]" * 129, {"content-type": "application/json"}, 400, "too_deep"),
        (b'{"a":' * 200 + b"1" + b"}" * 200, {"content-type": "application/json"}, 400, "too_deep"),
    ],
)
def test_bad_bodies_get_json_4xx(client, content, headers, status, code):
    response = client.post("/api/events", content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_unknown_routes_and_methods_are_json(client):
    assert client.get("/nowhere").json()["error"]["code"] == "not_found"
    response = client.delete("/api/events")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_events_are_on_kafka_keyed_by_session_in_the_partition_faust_reads(client, worker, kafka_bootstrap):
    sid = new_session_id()
    assert client.post("/api/events", json=page_view(sid, "https://s/?k=1")).status_code == 202
    wait_for_session(client, sid, 1)
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]

    from aiokafka.partitioner import DefaultPartitioner

    expected_partition = DefaultPartitioner()(sid.encode(), list(range(6)), list(range(6)))
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"probe-{sid}", "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, expected_partition), timeout=10)
        consumer.assign([TopicPartition(topic, expected_partition, low)])
        keys = set()
        while len(keys) < high - low:
            message = consumer.poll(5)
            assert message is not None and message.error() is None
            keys.add((message.key(), message.offset()))
        assert sid.encode() in {key for key, _ in keys}
    finally:
        consumer.close()


def test_topics_are_created_with_the_configured_partitions_and_kept_forever(worker, kafka_bootstrap):
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    metadata = admin.list_topics(timeout=10).topics
    assert len(metadata[topic].partitions) == 6
    assert len(metadata[f"{topic}.dlq"].partitions) == 6
    changelog = Settings.from_env(worker.env).changelog_topic
    assert len(metadata[changelog].partitions) == 6
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["retention.ms"].value == "-1"
    resource = ConfigResource(ConfigResource.Type.TOPIC, changelog)
    assert admin.describe_configs([resource])[resource].result(timeout=10)["cleanup.policy"].value == "compact"


def _bad(mutation):
    event = page_view(new_session_id(), "https://s/?x=1")
    mutation(event)
    return event


@pytest.mark.parametrize(
    ("event", "path", "words"),
    [
        (_bad(lambda e: e.update(type="navigation.teleported")), "$.type", "unknown event type"),
        (_bad(lambda e: e["data"].update(url=["not", "a", "string"])), "$.data.url", "Expected `str`, got `array`"),
        (_bad(lambda e: e["data"].update(title="t" * 2000)), "$.data.title", "length <= 1024"),
        (_bad(lambda e: e.update(time="26/11/2026 10:00")), "$.time", "datetime"),
        (_bad(lambda e: e.update(time="2026-11-26T10:00:00")), "$.time", "timezone"),
        (_bad(lambda e: e.update(time=rfc3339(datetime.now(UTC) + timedelta(hours=1)))), "$.time",
         "ahead of the server's clock"),
        (_bad(lambda e: e.update(subject="session-42")), "$.subject", "regex"),
        (_bad(lambda e: e.pop("subject")), "$.subject", "missing required field `subject`"),
        (_bad(lambda e: e.update(dataschema="urn:session-engine:schema:navigation.page_viewed:v9")), "$.dataschema",
         "unknown schema version"),
    ],
)  # fmt: skip
def test_each_bad_event_gets_a_400_with_index_path_and_message(client, event, path, words):
    good = page_view(new_session_id(), "https://s/?fine=1")
    response = client.post("/api/events", json=[good, event])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_event"
    [detail] = error["details"]
    assert (detail["index"], detail["path"]) == (1, path)
    assert words in detail["message"]
    # The worker keeps serving, and the good event of the refused batch was not appended: a later
    # event of that session (the marker) is its only one.
    assert client.post("/api/events", json=page_view(good["subject"], "https://s/?later=1", 5)).status_code == 202
    document, _ = wait_for_session(client, good["subject"], public_has("later"))
    assert document["meta"]["eventCount"] == 1
    assert document["namespaces"]["public"] == {"later": {"value": "1"}}


def test_too_many_events_in_one_batch_is_a_413(client):
    sid = new_session_id()
    response = client.post("/api/events", json=[page_view(sid, f"https://s/?n={n}") for n in range(501)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert client.post("/api/events", json=page_view(sid, "https://s/?later=1", 5)).status_code == 202
    document, _ = wait_for_session(client, sid, public_has("later"))
    assert document["meta"]["eventCount"] == 1
    assert document["namespaces"]["public"] == {"later": {"value": "1"}}


def test_cart_items_from_a_storefront_fill_the_cart_namespace(client):
    sid = new_session_id()
    batch = [cart_item_added(sid, "sku-1", 2, 0.1, "BRL", 0), cart_item_added(sid, "sku-2", 1, 0.2, "BRL", 1)]
    response = client.post("/api/events", json=batch)  # no service key: a storefront type
    assert response.status_code == 202, response.text
    document, _ = wait_for_session(client, sid, 2)
    assert document["namespaces"]["cart"] == {
        "cartItems": {"value": 3},
        "cartValue": {"value": 0.4},
        "cartCurrency": {"value": "BRL"},
    }


def test_a_cart_item_in_another_currency_is_dead_lettered_with_the_reason(client, worker, kafka_bootstrap):
    # A rule of the fold that raises: the event goes to the dead-letter topic, the stream goes on.
    sid = new_session_id()
    brl = cart_item_added(sid, "sku-1", 2, 10.5, "BRL", 0)
    usd = cart_item_added(sid, "sku-2", 1, 99, "USD", 1)
    marker = page_view(sid, "https://s/?after=usd", 2)
    assert client.post("/api/events", json=[brl, usd, marker]).status_code == 202
    document, _ = wait_for_session(client, sid, public_has("after"))
    assert document["meta"]["eventCount"] == 2
    assert document["namespaces"]["cart"] == {
        "cartItems": {"value": 2},
        "cartValue": {"value": 21.0},
        "cartCurrency": {"value": "BRL"},
    }
    topic = worker.env["SESSIONS_EVENTS_TOPIC"]
    letters = read_dead_letters(
        kafka_bootstrap, topic, lambda found: any(m.key() == sid.encode() for m in found), timeout=60
    )
    [letter] = [m for m in letters if m.key() == sid.encode()]
    assert orjson.loads(letter.value())["id"] == usd["id"]
    assert "currency" in reason(letter)
    assert "USD" in reason(letter) and "BRL" in reason(letter)
    assert headers(letter)["dlq.topic"] == topic
