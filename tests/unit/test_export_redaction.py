"""Sealed personal fields in ``sessionctl export``: redacted by default, opened with the data keys
(``[erased]`` when a key is gone), before decoding, so that logins are exported and folded."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest

from projections.rules import EMPTY_RULES
from schemas.events import EventDecodeError, decode_event
from schemas.session import encode_view
from streams.devkit.events import BASE_TIME, logged_in, new_session_id, page_view
from streams.privacy.cipher import DataKey, new_data_key
from streams.privacy.sealing import is_sealed, seal_event
from streams.tools.export.events import RecordFilter, opener, remembering_misses
from streams.tools.export.sessions import MemoryStates, SessionFolder
from streams.tools.export.writers import JsonlWriter, parquet_row

pytestmark = pytest.mark.unit

START, END = BASE_TIME, BASE_TIME + timedelta(hours=1)
EMAIL = "ana.souza@example.com"
USER = "user-4711"


def sealed_login(sid: str, key: DataKey, seconds: float = 60) -> bytes:
    record = logged_in(sid, USER, EMAIL, seconds, firstName="Ana")
    assert seal_event(record, key, frozenset())
    raw = orjson.dumps(record)
    assert is_sealed(raw) and EMAIL.encode() not in raw
    with pytest.raises(EventDecodeError):  # why the export must unseal first: the e-mail pattern
        decode_event(raw)
    return raw


def finder(sid: str, key: DataKey):
    return lambda session_id, kid: key.aead if (session_id, kid) == (sid, key.kid) else None


def test_by_default_a_sealed_login_is_chosen_with_its_personal_fields_redacted(tmp_path):
    sid, (key, _) = new_session_id(), new_data_key()
    raw = sealed_login(sid, key)
    chosen = RecordFilter(START, END).choose(raw)
    assert chosen is not None
    event, value = chosen
    data = orjson.loads(value)["data"]
    assert data["email"] == "[redacted]@redacted.invalid"
    assert data["userId"] == data["firstName"] == "[redacted]"
    assert event.data.email == "[redacted]@redacted.invalid"  # type: ignore[union-attr]
    row = parquet_row(event, 0, 7)
    assert EMAIL not in row["data"] and "enc:v1:" not in row["data"] and "[redacted]@redacted.invalid" in row["data"]
    writer = JsonlWriter(tmp_path / "out.jsonl")
    writer.write(event, value, 0, 7)
    writer.close()
    assert orjson.loads((tmp_path / "out.jsonl").read_bytes())["data"]["email"] == "[redacted]@redacted.invalid"


def test_with_the_data_keys_a_sealed_login_is_opened_and_an_erased_one_reads_erased():
    sid, (key, _) = new_session_id(), new_data_key()
    raw = sealed_login(sid, key)
    chosen = RecordFilter(START, END, unseal=opener(finder(sid, key))).choose(raw)
    assert chosen is not None
    assert orjson.loads(chosen[1])["data"] == {"userId": USER, "email": EMAIL, "firstName": "Ana"}
    gone = RecordFilter(START, END, unseal=opener(lambda s, k: None)).choose(raw)
    assert gone is not None
    assert orjson.loads(gone[1])["data"]["email"] == "[erased]@erased.invalid"


def test_records_without_the_marker_are_written_as_they_are():
    raw = orjson.dumps(page_view(new_session_id(), "https://s/?a=1", 10))
    calls = []
    selection = RecordFilter(START, END, unseal=lambda value: calls.append(value) or value)
    chosen = selection.choose(raw)
    assert chosen is not None and chosen[1] is raw and calls == []
    not_json = b'not json "enc:v1:x:y'
    assert selection.choose(not_json) is None and selection.skipped == 1


def test_a_missing_key_is_asked_for_once():
    asked = []

    def find(session_id, kid):
        asked.append((session_id, kid))

    remembered = remembering_misses(find)
    assert remembered("s", "k") is None and remembered("s", "k") is None
    assert asked == [("s", "k")]


@pytest.mark.parametrize("opened", [False, True])
def test_the_sessions_export_folds_logins_with_stand_ins_or_clear_values(opened):
    sid, (key, _) = new_session_id(), new_data_key()
    records = [
        (sid.encode(), orjson.dumps(page_view(sid, "https://s/?a=1", 30))),
        (sid.encode(), sealed_login(sid, key)),
    ]
    options = {"unseal": opener(finder(sid, key))} if opened else {}
    folder = SessionFolder(START, END, EMPTY_RULES, MemoryStates(), **options)
    assert folder.take(records) == 2
    (state,) = folder.documents()
    document = orjson.loads(encode_view(state))
    profile = document["namespaces"]["profile"]
    text = orjson.dumps(document).decode()
    if opened:
        assert profile["email"]["value"] == EMAIL and EMAIL in text
    else:
        assert profile["email"]["value"] == "[redacted]@redacted.invalid"
        assert EMAIL not in text and USER not in text and "enc:v1:" not in text
        assert_only_stand_ins(document)


def assert_only_stand_ins(node) -> None:
    """Every value that mentions "redacted" is a stand-in itself, not something derived from one."""
    if isinstance(node, dict):
        for value in node.values():
            assert_only_stand_ins(value)
    elif isinstance(node, list):
        for value in node:
            assert_only_stand_ins(value)
    elif isinstance(node, str) and "redacted" in node:
        assert node in ("[redacted]", "[redacted]@redacted.invalid"), node
