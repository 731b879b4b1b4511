"""Personal data in Kafka (issue 11, items 4 and 5), against two real workers and a real broker.

Logins are posted through one worker while the sessions are spread over both (half of them are
folded by the worker that did not write their data key: it finds the key in the keys' topic). A
plain consumer then reads every topic of the deployment from the beginning: no e-mail address,
phone or document is there in clear, before or after erasure. The service API serves them in
clear; erasure destroys the keys, deletes the session (404) and leaves a timeline of [erased] values.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from prometheus_client.parser import text_string_to_metric_families
from rocksdict import AccessType, Options, Rdict

from streams.devkit.events import logged_in, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.devkit.workers import MASTER_KEYS, WorkerProcess, make_worker
from streams.privacy.cipher import MasterKeys
from tests.support.cli import sessionctl
from tests.support.cluster import Cluster, make_cluster, session_in
from tests.support.http import HttpClient, http_client
from tests.support.sessions import wait_for_session
from tests.support.topics import read_topic

pytestmark = pytest.mark.integration

PARTITIONS = 4
RUN = uuid.uuid4().hex[:8]
PHONE = f"+55 11 9{RUN[:4]}-{RUN[4:]}"  # unique to this run: a hit in Kafka is ours
DOCUMENT = f"DOC-{RUN}-77"


def email(n: int) -> str:
    return f"shopper.{n}.{RUN}@example.com"


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = make_cluster(
        kafka_bootstrap, tmp_path_factory.mktemp("personal"), workers=2, partitions=PARTITIONS, name="personal",
        SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE), SESSIONS_STANDBY_REPLICAS="0",
    )  # fmt: skip
    try:
        made.start()
        yield made
        assert made.stop() == [0, 0], [w.log_tail() for w in made.workers]
    finally:
        made.kill()


def client(worker: WorkerProcess) -> HttpClient:
    return http_client(base_url=worker.url, timeout=20.0, headers=worker.service_headers)


def everything_in_kafka(cluster: Cluster) -> bytes:
    """Keys, values and headers of every record of every topic of this deployment, read from the
    beginning by a plain consumer (no key, no worker code)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topics = [name for name in admin.list_topics(timeout=10).topics if RUN_OF(cluster) in name]
    assert any(name.endswith("-session-keys") for name in topics), topics
    chunks: list[bytes] = []
    for topic in topics:
        for record in read_topic(cluster.bootstrap, topic):
            chunks += [record.key or b"", record.value or b"", *(value or b"" for _, value in record.headers)]
    return b"\n".join(chunks)


def RUN_OF(cluster: Cluster) -> str:
    return cluster.topic.rsplit("-", 1)[1]


def login(sid: str, n: int, address: str) -> list[dict]:
    return [
        page_view(sid, f"https://shop.example/p?n={n}", 0),
        logged_in(sid, f"user-{n}-{RUN}", address, 1, firstName="Ana", phone=PHONE, document=DOCUMENT),
    ]


def test_personal_fields_are_sealed_in_every_topic_and_erasure_shreds_them(cluster: Cluster):
    first, second = (client(w) for w in cluster.workers)
    sids = [session_in(p, PARTITIONS) for p in range(PARTITIONS)]
    for n, sid in enumerate(sids):  # all through worker 1: it writes every data key
        assert first.post("/api/events", json=login(sid, n, email(n))).status_code == 202
    for n, sid in enumerate(sids):  # read through worker 2: clear for sessions:read
        document, _ = wait_for_session(second, sid, 2)
        profile = document["namespaces"]["profile"]
        assert profile["email"]["value"] == email(n)
        assert profile["phone"]["value"] == PHONE and profile["document"]["value"] == DOCUMENT
        assert document["namespaces"]["authentication"]["storeUserEmail"]["value"] == email(n)
    # A storefront sets public.storeUserEmail (always personal) and public.phone (personal by the
    # sample rules) on its own session.
    browser = http_client(base_url=cluster.workers[0].url, timeout=20.0)
    created = browser.post(
        "/api/sessions",
        json={"public": {"storeUserEmail": {"value": email(90)}, "phone": {"value": PHONE}, "color": {"value": "red"}}},
    )
    assert created.status_code == 201, created.text
    mine = browser.get("/api/sessions", params={"items": "public.storeUserEmail,public.color"})
    assert mine.json()["namespaces"]["public"]["storeUserEmail"]["value"] == email(90)  # its own data, in clear

    # Every worker holds every key, one per session, once its tail of the keys' topic has read it.
    held = wait_for_data_keys([first, second], PARTITIONS + 1)
    log = everything_in_kafka(cluster)
    assert b'"enc:v1:' in log
    for secret in [*(email(n) for n in range(PARTITIONS)), email(90), PHONE, DOCUMENT]:
        assert secret.encode() not in log, secret
    assert b'"red"' in log  # what is not personal stays readable

    # The timeline opens them for sessions:history.
    events = second.get(f"/api/v1/sessions/{sids[0]}/events").json()["events"]
    assert [e["type"] for e in events] == ["navigation.page_viewed", "auth.logged_in"]
    assert events[1]["data"]["email"] == email(0) and events[1]["data"]["priceTables"] == []

    # Erasure of one session, asked of the worker that does not own it (forwarded).
    erased = first.delete(f"/api/v1/sessions/{sids[0]}")
    assert erased.status_code == 202, erased.text
    assert erased.json()["dataKeysDestroyed"] == 1 and erased.json()["deleted"] is True
    for worker in (first, second):
        assert worker.get(f"/api/v1/sessions/{sids[0]}").status_code == 404
    events = second.get(f"/api/v1/sessions/{sids[0]}/events").json()["events"]
    assert [e["type"] for e in events] == ["navigation.page_viewed", "auth.logged_in", "session.erased"]
    data = events[1]["data"]
    assert data["email"] == "[erased]@erased.invalid" and data["userId"] == data["phone"] == "[erased]"
    assert first.delete(f"/api/v1/sessions/{uuid.uuid4()}").status_code == 404

    # Erasure by person: two more sessions of one shopper (the address in another case).
    again = session_in(0, PARTITIONS)
    assert first.post("/api/events", json=login(again, 9, email(1).upper())).status_code == 202
    wait_for_session(first, again, 2)
    person = second.delete("/api/v1/people", params={"email": email(1).title()})
    assert person.status_code == 202, person.text
    assert person.json()["sessions"] == sorted([sids[1], again])
    for sid in (sids[1], again):
        wait_until_gone(second, sid)
    assert second.delete("/api/v1/people", params={"email": email(1)}).status_code == 404
    bad = second.delete("/api/v1/people", params={"email": email(1), "userId": "x"})
    assert bad.status_code == 400 and "exactly one" in bad.json()["error"]["message"]

    # Every key of the erased sessions is a tombstone now: nothing left can open their values.
    log = everything_in_kafka(cluster)
    for secret in [email(0), email(1), email(1).upper()]:
        assert secret.encode() not in log
    assert_keys_destroyed(cluster, [sids[0], sids[1], again])
    wait_for_data_keys([first, second], held + 1 - 3)  # every worker's tail drops the destroyed keys
    # The other sessions are untouched.
    assert second.get(f"/api/v1/sessions/{sids[2]}").json()["namespaces"]["profile"]["email"]["value"] == email(2)


def data_keys(http: HttpClient) -> float:
    families = {f.name: f for f in text_string_to_metric_families(http.get("/metrics").text)}
    return families["sessions_data_keys"].samples[0].value


def wait_for_data_keys(workers: list[HttpClient], expected: float, timeout: float = 20.0) -> float:
    deadline = time.monotonic() + timeout
    while (held := [data_keys(w) for w in workers]) != [expected] * len(workers):
        assert time.monotonic() < deadline, held
        time.sleep(0.1)  # polling the workers' gauges
    return expected


def wait_until_gone(http: HttpClient, sid: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := http.get(f"/api/v1/sessions/{sid}").status_code) != 404:
        assert status == 200 and time.monotonic() < deadline, status
        time.sleep(0.1)  # polling for the fold of the erasure (people erasure does not wait)


def assert_keys_destroyed(cluster: Cluster, sids: list[str]) -> None:
    latest: dict[bytes, bytes | None] = {}
    for record in read_topic(cluster.bootstrap, f"{cluster.app_id}-session-keys"):
        latest[record.key or b""] = record.value
    for sid in sids:
        keys = {k: v for k, v in latest.items() if k.startswith(f"k:{sid}:".encode())}
        assert keys and all(value is None for value in keys.values()), (sid, keys)
        assert not [k for k, v in latest.items() if k.endswith(f":{sid}".encode()) and v is not None]


def test_a_dead_letter_of_a_sealed_event_stays_sealed(cluster: Cluster):
    first = client(cluster.workers[0])
    sid = session_in(1, PARTITIONS)
    assert first.post("/api/events", json=login(sid, 50, email(50))).status_code == 202
    wait_for_session(first, sid, 2)
    sealed = next(v for v in values_of(cluster, cluster.topic) if sid.encode() in v and b"auth.logged_in" in v)
    assert email(50).encode() not in sealed and b'"enc:v1:' in sealed
    # The same record under a key that is not its subject: the fold opens it, then refuses it.
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    producer.produce(cluster.topic, key=b"not-the-subject", value=sealed)
    assert producer.flush(10) == 0
    deadline = time.monotonic() + 30
    while not (letters := [v for v in values_of(cluster, f"{cluster.topic}.dlq") if v == sealed]):
        assert time.monotonic() < deadline, "no dead letter"
        time.sleep(0.2)  # polling for the fold
    assert letters == [sealed]  # as logged: sealed, byte for byte


def values_of(cluster: Cluster, topic: str) -> list[bytes]:
    return [record.value or b"" for record in read_topic(cluster.bootstrap, topic)]


def test_master_key_rotation_rewraps_every_data_key(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    """``SESSIONS_MASTER_KEY="<new>,<old>"`` then ``sessionctl keys rewrap``: a worker that has
    only the new key afterwards, and lost its store, restores the sealed states from the changelog
    and still opens every session's personal fields."""
    old, new = MasterKeys.generate(), MasterKeys.generate()
    base = tmp_path_factory.mktemp("rotate")
    app_id, topic = f"app-rotate-{RUN}", f"events-rotate-{RUN}"
    worker = make_worker(
        kafka_bootstrap, app_id, topic, base / "w1", base / "w1.log", PARTITIONS, SESSIONS_MASTER_KEY=old
    )
    MASTER_KEYS[f"{app_id}-old"], MASTER_KEYS[f"{app_id}-new"] = old, new  # the log scan looks for them too
    worker.start()
    try:
        http = client(worker)
        sid = session_in(3, PARTITIONS)
        assert http.post("/api/events", json=login(sid, 80, email(80))).status_code == 202
        wait_for_session(http, sid, 2)
        rotated = {**worker.env, "SESSIONS_MASTER_KEY": f"{new},{old}"}
        done = sessionctl("keys", "rewrap", env=rotated, expect=0)
        assert "1 data keys: 1 wrapped again with the newest master key" in done.stdout
        again = sessionctl("keys", "rewrap", env=rotated, expect=0)
        assert "1 data keys: 0 wrapped again" in again.stdout  # idempotent
        assert worker.stop() == 0
        store = base / "w1" / "store"
        # Not in the stores either: every key and value of every column family of every RocksDB
        # under the store folder, as RocksDB gives them back (a raw file may hold them compressed).
        stored = list(store_records(store))
        assert {path.name for path, *_ in stored} >= {"sessions-3", "history-3"}, {path for path, *_ in stored}
        leaks = [(path.name, cf, key) for path, cf, key, value in stored if email(80).encode() in key + value]
        assert not leaks, f"{email(80)} in clear in the stores: {leaks}"
        session = [value for _, _, key, value in stored if key == sid.encode()]
        assert len(session) == 1 and b'"enc:v1:' in session[0], session  # the session, its values sealed
        worker.env["SESSIONS_MASTER_KEY"] = new  # the old key is gone
        shutil.rmtree(store)  # and the store: restored from the changelog, sealed, then opened
        worker.start()
        document, _ = wait_for_session(http, sid, 2)
        assert document["namespaces"]["profile"]["email"]["value"] == email(80)
        events = http.get(f"/api/v1/sessions/{sid}/events").json()["events"]
        assert events[1]["data"]["email"] == email(80)
    finally:
        worker.kill()


def store_records(store: Path) -> Iterator[tuple[Path, str, bytes, bytes]]:
    """(database, column family, key, value) of every RocksDB under ``store``, opened read-only
    (its worker stopped), every column family."""
    databases = sorted(current.parent for current in store.rglob("CURRENT"))
    assert databases, f"no RocksDB under {store}"
    for path in databases:
        families = Rdict.list_cf(str(path), Options(raw_mode=True))
        others = {name: Options(raw_mode=True) for name in families if name != "default"}
        db = Rdict(str(path), Options(raw_mode=True), column_families=others, access_type=AccessType.read_only())
        try:
            for family in families:
                for key, value in db.get_column_family(family).items():
                    yield path, family, key, value
        finally:
            db.close()
