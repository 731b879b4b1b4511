"""The JSON Schema files are the contract for emitters in any language: they and the decoder agree."""

import copy

import orjson
import pytest
from jsonschema import Draft202012Validator

from schemas.events import EventDecodeError, current_version, decode_event, event_from_object
from schemas.jsonschema import FOLDER, documents, render
from streams.devkit.events import EXAMPLES, new_session_id, page_view

pytestmark = pytest.mark.unit

GENERATED = documents()


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        orjson.loads((FOLDER / name).read_bytes()), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def test_the_files_are_exactly_what_the_types_generate():
    on_disk = {path.name for path in FOLDER.glob("*.schema.json")}
    assert on_disk == set(GENERATED), "run: python -m schemas.jsonschema"
    for name, document in GENERATED.items():
        assert (FOLDER / name).read_bytes() == render(document), f"{name} drifted: run python -m schemas.jsonschema"


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_every_file_is_a_valid_2020_12_schema(name):
    Draft202012Validator.check_schema(orjson.loads((FOLDER / name).read_bytes()))


def valid_events():
    """The example of every event type, named by the file of its current version."""
    sid = new_session_id()
    return [(f"{name}.v{current_version(name)}", example(sid)) for name, example in sorted(EXAMPLES.items())]


MUTATIONS = [
    (("type",), "navigation.unknown"),
    (("type",), KeyError),
    (("subject",), "NOT-A-UUID"),
    (("time",), "2026-11-26T10:00:00"),
    (("time",), "yesterday"),
    (("specversion",), "0.3"),
    (("id",), ""),
    (("source",), "s" * 300),
    (("data",), KeyError),
    (("data",), "text"),
    (("dataschema",), "urn:session-engine:schema:other:v9"),
]


def mutate(event, path, value):
    event = copy.deepcopy(event)
    target = event
    *parents, last = path
    for key in parents:
        target = target[key]
    if value is KeyError:
        target.pop(last, None)
    else:
        target[last] = value
    return event


def decoder_accepts(event) -> bool:
    try:
        event_from_object(event)
        decode_event(orjson.dumps(event))
    except EventDecodeError:
        return False
    return True


@pytest.mark.parametrize(("name", "event"), valid_events(), ids=lambda v: v if isinstance(v, str) else "")
def test_valid_events_pass_both_the_files_and_the_decoder(name, event):
    assert decoder_accepts(event)
    assert not list(validator(f"{name}.schema.json").iter_errors(event))
    assert not list(validator("envelope.schema.json").iter_errors(event))


# auth.logged_out's data is optional (it has nothing to say): both sides accept it missing.
ACCEPTED = {("auth.logged_out.v1", ("data",), KeyError), ("session.erased.v1", ("data",), KeyError)}


@pytest.mark.parametrize(("path", "value"), MUTATIONS)
def test_invalid_events_fail_both_the_files_and_the_decoder(path, value):
    for name, event in valid_events():
        bad = mutate(event, path, value)
        schema_accepts = not list(validator("envelope.schema.json").iter_errors(bad))
        assert decoder_accepts(bad) == schema_accepts, (name, bad)
        assert schema_accepts == ((name, path, value) in ACCEPTED), (name, bad)


@pytest.mark.parametrize(
    ("data", "field"),
    [({"url": ""}, "url"), ({"url": "u" * 5000}, "url"), ({"url": "x", "pageType": "blog"}, "pageType")],
)
def test_data_constraints_agree(data, field):
    event = {**page_view(new_session_id(), "https://s/"), "data": data}
    assert not decoder_accepts(event)
    assert list(validator("navigation.page_viewed.v2.schema.json").iter_errors(event))


def test_a_v1_record_valid_under_the_v1_file_decodes_from_the_log():
    v1 = page_view(new_session_id(), "https://s/?a=1", referrer="https://r/", title="T")
    assert not list(validator("navigation.page_viewed.v1.schema.json").iter_errors(v1))
    assert decode_event(orjson.dumps(v1)).data.referrerUrl == "https://r/"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"sku": "s", "quantity": 0, "price": 1, "currency": "BRL"}, "quantity"),
        ({"sku": "s", "quantity": 1.5, "price": 1, "currency": "BRL"}, "quantity"),
        ({"sku": "s", "quantity": 1, "price": -0.01, "currency": "BRL"}, "price"),
        ({"sku": "s", "quantity": 1, "price": "10.00", "currency": "BRL"}, "price"),
        ({"sku": "s", "quantity": 1, "price": 1, "currency": "brl"}, "currency"),
        ({"sku": "", "quantity": 1, "price": 1, "currency": "BRL"}, "sku"),
        ({"quantity": 1, "price": 1, "currency": "BRL"}, "sku"),
    ],
)
def test_cart_item_constraints_agree(data, field):
    event = {**EXAMPLES["cart.item_added"](new_session_id()), "data": data}
    assert not decoder_accepts(event), field
    assert list(validator("cart.item_added.v1.schema.json").iter_errors(event)), field
    assert list(validator("envelope.schema.json").iter_errors(event)), field
