import orjson
import pytest

from schemas.events import EventDecodeError, PageViewed, decode_event, encode_event, event_from_object
from streams.devkit.events import new_session_id, page_view

pytestmark = pytest.mark.unit


def raw(obj) -> bytes:
    return orjson.dumps(obj)


def test_a_valid_page_view_decodes_to_its_type_and_round_trips():
    obj = page_view(new_session_id(), "https://s/?a=1", referrerUrl="https://google.com/", title="Home")
    event = decode_event(raw(obj))
    assert isinstance(event, PageViewed)
    assert event.data.url == "https://s/?a=1"
    assert decode_event(encode_event(event)) == event
    assert event_from_object(obj) == event


def mutate(path, value):
    obj = page_view(new_session_id(), "https://s/")
    target = obj
    *parents, last = path
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return obj


@pytest.mark.parametrize(
    ("path", "value", "error_path", "words"),
    [
        (("type",), "navigation.unknown", "$.type", "unknown event type"),
        (("type",), KeyError, "$.type", "missing required field `type`"),
        (("data", "url"), KeyError, "$.data.url", "missing required field `url`"),
        (("data", "url"), 42, "$.data.url", "Expected `str`, got `int`"),
        (("data", "url"), "", "$.data.url", "length >= 1"),
        (("data", "url"), "x" * 5000, "$.data.url", "length <= 4096"),
        (("time",), "yesterday", "$.time", "datetime"),
        (("time",), "2026-11-26T10:00:00", "$.time", "timezone"),
        (("subject",), "not-a-uuid", "$.subject", "regex"),
        (("subject",), "0F8FAD5B-D9CB-469F-A165-70867728950E", "$.subject", "regex"),
        (("specversion",), "0.3", "$.specversion", "Invalid enum value"),
        (("data",), KeyError, "$.data", "missing required field `data`"),
    ],
)
def test_invalid_events_name_the_field(path, value, error_path, words):
    obj = mutate(path, value)
    for decode in (lambda: decode_event(raw(obj)), lambda: event_from_object(obj)):
        with pytest.raises(EventDecodeError) as caught:
            decode()
        assert caught.value.path == error_path
        assert words in caught.value.message


@pytest.mark.parametrize("garbage", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'"text"'])
def test_garbage_bytes_are_decode_errors_not_crashes(garbage):
    with pytest.raises(EventDecodeError):
        decode_event(garbage)


def test_the_api_stamps_the_current_schema_version():
    event = event_from_object(page_view(new_session_id(), "https://s/"))
    assert event.dataschema == "urn:session-engine:schema:navigation.page_viewed:v2"
    assert b'"dataschema":"urn:session-engine:schema:navigation.page_viewed:v2"' in encode_event(event)


def test_a_v1_record_from_the_log_is_upcast_to_v2():
    v1 = page_view(new_session_id(), "https://s/?a=1", referrer="https://google.com/", title="Home")
    event = decode_event(raw(v1))  # no dataschema: appended before versions were stamped
    assert event.data.referrerUrl == "https://google.com/"
    assert event.data.pageType == "other"
    assert event.dataschema == "urn:session-engine:schema:navigation.page_viewed:v2"
    stamped_v1 = {**v1, "dataschema": "urn:session-engine:schema:navigation.page_viewed:v1"}
    assert decode_event(raw(stamped_v1)) == event
    assert event_from_object(stamped_v1) == event


def test_old_records_fold_identically_to_their_upcast_form():
    from projections.session import fold

    sid = new_session_id()
    v1 = [page_view(sid, f"https://s/?n={n}&utm_source=x", n, referrer="https://r/") for n in range(3)]
    v2 = [{**e, "data": {"url": e["data"]["url"], "referrerUrl": "https://r/"}} for e in v1]
    from_log = fold(decode_event(raw(e)) for e in v1)
    from_api = fold(event_from_object(e) for e in v2)
    assert from_log == from_api


@pytest.mark.parametrize(
    "dataschema",
    ["urn:session-engine:schema:navigation.page_viewed:v3", "urn:session-engine:schema:navigation.page_viewed:v0",
     "https://elsewhere/schema.json", "urn:session-engine:schema:session.created:v1"],
)  # fmt: skip
def test_a_version_with_no_upcaster_is_a_decode_error(dataschema):
    obj = {**page_view(new_session_id(), "https://s/"), "dataschema": dataschema}
    for decode in (lambda: decode_event(raw(obj)), lambda: event_from_object(obj)):
        with pytest.raises(EventDecodeError) as caught:
            decode()
        assert caught.value.path == "$.dataschema"
        assert "unknown schema version" in caught.value.message


@pytest.mark.parametrize("suffix", ["v\u00b2", "v" + "9" * 5000, "v", "v-1", "v1.0"])
def test_odd_version_numbers_are_decode_errors(suffix):
    obj = {
        **page_view(new_session_id(), "https://s/"),
        "dataschema": f"urn:session-engine:schema:navigation.page_viewed:{suffix}",
    }
    with pytest.raises(EventDecodeError):
        event_from_object(obj)
    with pytest.raises(EventDecodeError):
        decode_event(raw(obj))
