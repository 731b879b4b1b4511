"""The fold agent in faust's test context: no broker, but the real table on real rocksdict files."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from projections.session import fold
from schemas.events import event_from_object
from schemas.session import decode_state, encode_state
from streams.app import create_engine
from streams.settings import Settings
from tests.support.events import new_session_id, page_view, public_set
from tests.support.rules import SAMPLE_RULES_FILE, sample_rules

pytestmark = pytest.mark.agent


@pytest.fixture
def engine(tmp_path):
    settings = Settings(
        data_dir=tmp_path, app_id="agent-test", partitions=1, web_port=1, rules_file=str(SAMPLE_RULES_FILE)
    )
    return create_engine(settings)


def run(engine, records):
    """Feed (key, value) records through the agent; return the table's values for the given keys."""
    agent = engine.app.agents["fold-session-events"]

    # The agent folds in batches: a last, valid event signals (through the same waiter the HTTP
    # writes use) that everything before it in the partition has been folded.
    sentinel = page_view(new_session_id(), "https://s/?sentinel=1")

    async def scenario():
        folded = engine.waiters.expect(sentinel["id"])
        async with agent.test_context() as context:
            for key, value in [*records, (sentinel["subject"].encode(), orjson.dumps(sentinel))]:
                await context.put(value, key=key)
            await asyncio.wait_for(folded, timeout=10)
            return {key: engine.sessions.get(key) for key, _ in records}

    return asyncio.run(scenario())


def test_the_agent_stores_the_pure_fold_in_rocksdb(engine, tmp_path):
    sid = new_session_id()
    objects = [page_view(sid, "https://s/?a=1", 0), public_set(sid, {"n": 2}, 1), page_view(sid, "https://s/?a=3", 2)]
    stored = run(engine, [(sid.encode(), orjson.dumps(o)) for o in objects])
    expected = fold((event_from_object(o) for o in objects), rules=sample_rules())
    assert stored[sid.encode()] == encode_state(expected)
    assert decode_state(stored[sid.encode()]).meta.event_count == 3
    assert decode_state(stored[sid.encode()]).namespaces["store"]["currencyCode"] == {"value": "BRL"}
    assert list(tmp_path.glob("worker/**/sessions-0.db")), "the table is not in a RocksDB folder"


def test_bad_records_are_dead_lettered_and_the_stream_goes_on(engine, monkeypatch):
    # No broker in this tier: the dead-letter topic's send is the one thing replaced.
    dead: list[dict] = []

    async def record_send(**kwargs):
        dead.append(kwargs)

    monkeypatch.setattr(engine.dead_letters, "send", record_send)
    sid = new_session_id()
    records = [
        (sid.encode(), b"not json"),
        (sid.encode(), orjson.dumps(page_view(sid, "https://s/?ok=1"))),
        (b"someone-else", orjson.dumps(page_view(sid, "https://s/?mismatch=1"))),
    ]
    stored = run(engine, records)
    assert decode_state(stored[sid.encode()]).namespaces["public"] == {"ok": {"value": "1"}}
    assert stored[b"someone-else"] is None
    assert [d["value"] for d in dead] == [records[0][1], records[2][1]]
    reasons = [dict(d["headers"])["dlq.reason"].decode() for d in dead]
    assert reasons[0].startswith("$:")
    assert "subject" in reasons[1]
