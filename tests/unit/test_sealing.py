"""Sealing personal values (streams.privacy.cipher, .sealing; schemas.personal): pure, no Kafka."""

from __future__ import annotations

import orjson
import pytest

from projections.session import fold
from schemas.events import decode_event
from schemas.personal import is_personal_state, public_keys
from schemas.session import decode_state, encode_state
from streams.devkit.events import logged_in, new_session_id, page_view, public_set
from streams.privacy.cipher import MasterKeyError, MasterKeys, new_data_key
from streams.privacy.sealing import open_json, redact_json, seal_event, seal_state

pytestmark = pytest.mark.unit

PERSONAL = public_keys(frozenset({"phone"}))


def keyring(*keys):
    found = {key.kid: key.aead for key in keys}
    return lambda session_id, kid: found.get(kid)


def test_a_login_is_sealed_field_by_field_and_opens_to_the_same_record():
    sid = new_session_id()
    record = logged_in(sid, "u-1", "ana@example.com", firstName="Ana", phone="+55 11", priceTables=["gold"])
    key, _ = new_data_key()
    sealed = orjson.loads(orjson.dumps(record))
    assert seal_event(sealed, key, PERSONAL)
    raw = orjson.dumps(sealed)
    assert b"ana@example.com" not in raw and b"Ana" not in raw and b"+55 11" not in raw and b"u-1" not in raw
    assert sealed["data"]["priceTables"] == ["gold"] and sealed["id"] == record["id"]  # not personal
    assert orjson.loads(open_json(raw, keyring(key))) == record
    assert decode_event(open_json(raw, keyring(key))).data.email == "ana@example.com"


def test_without_its_key_a_value_reads_erased_and_still_decodes():
    sid = new_session_id()
    key, _ = new_data_key()
    sealed = orjson.loads(orjson.dumps(logged_in(sid, "u-1", "ana@example.com", lastName="Silva")))
    seal_event(sealed, key, PERSONAL)
    opened = orjson.loads(open_json(orjson.dumps(sealed), keyring()))
    assert opened["data"] == {"userId": "[erased]", "email": "[erased]@erased.invalid", "lastName": "[erased]"}
    decode_event(orjson.dumps(opened))  # the fold can still replay it
    redacted = orjson.loads(redact_json(orjson.dumps(sealed)))
    assert redacted["data"]["email"] == "[redacted]@redacted.invalid"


def test_a_value_moved_to_another_field_or_session_does_not_open():
    sid, other = new_session_id(), new_session_id()
    key, _ = new_data_key()
    sealed = orjson.loads(orjson.dumps(logged_in(sid, "u-1", "ana@example.com", firstName="Ana")))
    seal_event(sealed, key, PERSONAL)
    swapped = {**sealed, "data": {**sealed["data"], "firstName": sealed["data"]["email"]}}
    assert orjson.loads(open_json(orjson.dumps(swapped), keyring(key)))["data"]["firstName"] == "[unreadable]"
    moved = {**sealed, "subject": other}
    assert orjson.loads(open_json(orjson.dumps(moved), keyring(key)))["data"]["email"].startswith("[unreadable]")


def test_personal_public_keys_are_sealed_and_the_others_are_not():
    sid = new_session_id()
    key, _ = new_data_key()
    record = public_set(sid, {"storeUserEmail": "ana@example.com", "phone": 5511, "color": "red"})
    sealed = orjson.loads(orjson.dumps(record))
    seal_event(sealed, key, PERSONAL)
    public = sealed["data"]["public"]
    assert public["color"] == {"value": "red"}
    assert public["phone"]["value"].startswith("enc:v1:") and public["storeUserEmail"]["value"].startswith("enc:v1:")
    assert orjson.loads(open_json(orjson.dumps(sealed), keyring(key))) == record  # the number stays a number
    nothing = orjson.loads(orjson.dumps(page_view(sid, "https://s/?a=1")))
    assert not seal_event(nothing, key, PERSONAL)


def test_a_states_personal_values_are_sealed_and_open_to_the_same_state():
    sid = new_session_id()
    events = [decode_event(orjson.dumps(e)) for e in (page_view(sid, "https://s/"), logged_in(sid, "u", "a@b.co", 1))]
    state = fold(events)
    assert state is not None and is_personal_state(state.namespaces, state.facts, PERSONAL)
    key, _ = new_data_key()
    stored = seal_state(state, key, PERSONAL)
    assert b"a@b.co" not in stored and b'"u"' not in stored
    assert decode_state(open_json(stored, keyring(key))) == state
    anonymous = fold(events[:1])
    assert anonymous is not None and not is_personal_state(anonymous.namespaces, anonymous.facts, PERSONAL)
    assert open_json(encode_state(anonymous), keyring()) == encode_state(anonymous)  # untouched, not parsed


def test_master_keys_wrap_data_keys_and_rotate():
    old, new = MasterKeys.generate(), MasterKeys.generate()
    key, raw = new_data_key()
    sid = new_session_id()
    wrapped = MasterKeys(old).wrap(sid, key, raw)
    assert raw not in wrapped
    rotated = MasterKeys(f"{new},{old}")  # the newest first; the old one still unwraps
    assert rotated.unwrap(sid, key.kid, wrapped).aead.decrypt  # opens
    sealed = orjson.loads(orjson.dumps(logged_in(sid, "u", "a@b.co")))
    seal_event(sealed, key, PERSONAL)
    reopened = rotated.unwrap(sid, key.kid, wrapped)
    assert orjson.loads(open_json(orjson.dumps(sealed), keyring(reopened)))["data"]["email"] == "a@b.co"
    assert b'"master"' in rotated.wrap(sid, key, raw) and MasterKeys(new).digests("email", "a@b.co")[0] in (
        rotated.digests("email", "a@b.co")
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "no master key"), ("%%%%%%%%", "not base64"), ("c2hvcnQ=", "has 5 bytes; it needs 32")],
)
def test_a_bad_master_key_is_named_without_echoing_it(text, message):
    with pytest.raises(MasterKeyError, match=message) as raised:
        MasterKeys(text)
    assert text not in str(raised.value) or not text
