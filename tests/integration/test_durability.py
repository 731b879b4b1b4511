"""The state outlives the worker: kept in local RocksDB across restarts, rebuilt from the changelog,
or from the log when the folder is one of the faust-table engine."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from confluent_kafka import Producer
from rocksdict import Options, Rdict

from schemas.session import decode_state, encode_state, encode_view
from streams.devkit.events import new_session_id, page_view
from streams.devkit.workers import SERVICE_HEADERS
from streams.fold.store import pack_session, unpack_session
from streams.kafka.admin import TopicSpec, ensure_topics
from tests.support.http import http_client
from tests.support.sessions import wait_for_session
from tests.support.workers import wipe

pytestmark = pytest.mark.integration

PARTITIONS = 4


def seed(worker, sessions: int = 20) -> dict[str, bytes]:
    """Posts a few page views per session and returns every session's served document."""
    ids = [new_session_id() for _ in range(sessions)]
    with http_client(base_url=worker.url, timeout=10) as client:
        batch = [page_view(sid, f"https://s/?n={n}&sid={sid[:8]}", n) for sid in ids for n in range(3)]
        assert client.post("/api/events", json=batch).json()["accepted"] == len(batch)
        for sid in ids:
            wait_for_session(client, sid, 3)
        return {sid: client.get(f"/api/v1/sessions/{sid}", headers=SERVICE_HEADERS).content for sid in ids}


def served(worker, ids) -> dict[str, bytes]:
    with http_client(base_url=worker.url, timeout=10) as client:
        return {sid: client.get(f"/api/v1/sessions/{sid}", headers=SERVICE_HEADERS).content for sid in ids}


def rocksdb_partitions(data_dir):
    return sorted(data_dir.glob("store/sessions-*"))


def test_state_survives_a_restart_from_local_rocksdb(worker_factory):
    worker = worker_factory(partitions=PARTITIONS).start()
    before = seed(worker)
    assert worker.stop() == 0

    # The store is on disk in real RocksDB files, readable without the worker or the broker.
    files = rocksdb_partitions(worker.data_dir)
    assert len(files) == PARTITIONS, "no RocksDB partition folders under the data dir"
    on_disk = {}
    tampered = next(iter(before))
    for path in files:
        db = Rdict(str(path), options=Options(raw_mode=True))
        try:
            for sid in before:
                value = db.get(sid.encode())
                if value is not None:
                    offset, encoded = unpack_session(value)
                    state = decode_state(encoded)
                    on_disk[sid] = encode_view(state)
                    if sid == tampered:
                        # Only the local store has this: served after the restart means it was
                        # reused, not rebuilt from the changelog or replayed from the log.
                        public = {**state.namespaces["public"], "marker": {"value": "local-store"}}
                        changed = msgspec.structs.replace(state, namespaces={**state.namespaces, "public": public})
                        db[sid.encode()] = pack_session(offset, encode_state(changed))
        finally:
            db.close()
    assert on_disk == before

    worker.start()
    after = served(worker, before)
    assert orjson.loads(after.pop(tampered))["namespaces"]["public"]["marker"] == {"value": "local-store"}
    assert after == {sid: doc for sid, doc in before.items() if sid != tampered}
    # A new event after the restart folds onto the kept state, not onto an empty one.
    sid = next(iter(after))
    with http_client(base_url=worker.url, timeout=10) as client:
        assert client.post("/api/events", json=page_view(sid, "https://s/?after=restart", 60)).status_code == 202
        document, _ = wait_for_session(client, sid, 4)
    assert document["namespaces"]["public"]["after"] == {"value": "restart"}
    assert document["namespaces"]["public"]["n"] == {"value": "2"}
    assert document["meta"]["eventCount"] == 4
    assert worker.stop() == 0


def test_state_is_rebuilt_from_the_changelog_when_the_data_folder_is_lost(worker_factory):
    worker = worker_factory(partitions=PARTITIONS).start()
    before = seed(worker)
    assert worker.stop() == 0

    wipe(worker.data_dir)
    assert rocksdb_partitions(worker.data_dir) == []

    worker.start()
    after = served(worker, before)
    assert after == before
    assert all(decode_state(doc).meta.event_count == 3 for doc in after.values())
    assert len(rocksdb_partitions(worker.data_dir)) == PARTITIONS, "recovery did not write the store back"
    assert worker.stop() == 0


def test_a_worker_restarted_at_another_address_with_the_same_data_comes_back(worker_factory):
    # A pod that returns with a new IP and the same volume: static membership must not lock it out.
    from streams.devkit import broker

    worker = worker_factory(partitions=PARTITIONS).start()
    before = seed(worker, sessions=5)
    assert worker.stop() == 0
    worker.port = broker.free_port()
    worker.env["SESSIONS_WEB_PORT"] = str(worker.port)
    worker.start(ready_timeout=60)
    assert served(worker, before) == before
    assert worker.stop() == 0


def test_a_data_folder_of_the_faust_table_engine_is_rebuilt_from_the_log(worker_factory, kafka_bootstrap):
    # What an upgrade finds: the old engine's RocksDB tables under <data>/worker/, its events in the
    # log, and no changelog of the fold loop yet (a new topic name).
    worker = worker_factory(partitions=PARTITIONS)
    ids = [new_session_id() for _ in range(10)]
    events = [page_view(sid, f"https://s/?n={n}&sid={sid[:8]}", n) for sid in ids for n in range(3)]
    topic = TopicSpec(worker.env["SESSIONS_EVENTS_TOPIC"], PARTITIONS)
    ensure_topics(kafka_bootstrap, [topic])
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "partitioner": "murmur2_random"})
    for event in events:
        producer.produce(worker.env["SESSIONS_EVENTS_TOPIC"], key=event["subject"].encode(), value=orjson.dumps(event))
    assert producer.flush(30) == 0
    old_table = worker.data_dir / "worker" / f"{worker.env['SESSIONS_APP_ID']}-data" / "v1" / "tables" / "sessions-0.db"
    old_table.parent.mkdir(parents=True)
    db = Rdict(str(old_table), options=Options(raw_mode=True))
    db[ids[0].encode()] = b'{"stale": "never served"}'
    db.close()

    worker.start()
    with http_client(base_url=worker.url, timeout=10) as client:
        documents = {sid: wait_for_session(client, sid, 3)[0] for sid in ids}
    assert all(doc["meta"]["eventCount"] == 3 for doc in documents.values())
    assert documents[ids[0]]["namespaces"]["public"]["n"] == {"value": "2"}
    log = worker.log_path.read_text()
    assert "upgrade:" in log and "not migrated" in log and "rebuilds its store" in log
    assert worker.stop() == 0
