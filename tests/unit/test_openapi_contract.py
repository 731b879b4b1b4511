"""The OpenAPI document (``streams/web/openapi.json``) holds the event contract of the Python types.

No broker, no worker: the document is a file. The worker serving it, its routes and the fuzzing of
every operation are in ``tests/integration/test_openapi_fuzz.py``.
"""

from __future__ import annotations

import msgspec
import orjson
import pytest

from schemas import upcasters
from schemas.jsonschema import (
    OPENAPI_DOCUMENT,
    REF,
    VERSIONS,
    openapi_components,
    render_openapi,
    with_event_components,
)

pytestmark = pytest.mark.unit


def undescribed(schema: dict) -> dict:
    return {key: value for key, value in schema.items() if key != "description"}


def data_type(struct: type[msgspec.Struct]) -> type:
    return next(field.type for field in msgspec.structs.fields(struct) if field.name == "data")


def test_the_document_holds_the_event_contract():
    # Every (type, version) the intake accepts is documented, its data with the very JSON Schema of
    # the Python type, its envelope attributes constrained as the type constrains them.
    components = orjson.loads(OPENAPI_DOCUMENT.read_bytes())["components"]["schemas"]
    documented: dict[tuple[str, int], str] = {}
    for ref in components["Event"]["oneOf"]:
        properties = components[ref["$ref"].rsplit("/", 1)[1]]["properties"]
        event_type = properties["type"]["const"]
        dataschema = properties["dataschema"]
        version = upcasters.version_of(event_type, dataschema.get("const") or dataschema["anyOf"][0]["const"])
        struct = VERSIONS[(event_type, version)]  # a KeyError is a version the contract does not have
        documented[(event_type, version)] = properties["data"]["$ref"].rsplit("/", 1)[1]
        _, typed = msgspec.json.schema_components([struct], ref_template=REF)
        for attribute in ("specversion", "id", "source", "subject", "time"):
            expected = typed[struct.__name__]["properties"][attribute]
            assert undescribed(properties[attribute]) == undescribed(expected), (event_type, attribute)
    data_types = {key: data_type(struct) for key, struct in VERSIONS.items()}
    assert documented == {key: data.__name__ for key, data in data_types.items()}
    _, typed = msgspec.json.schema_components(list(dict.fromkeys(data_types.values())), ref_template=REF)
    for name, schema in typed.items():
        assert components[name] == schema, f"#/components/schemas/{name} is not the schema of the Python type"


def test_the_event_components_are_exactly_what_the_types_generate():
    on_disk = OPENAPI_DOCUMENT.read_bytes()
    assert render_openapi(with_event_components(orjson.loads(on_disk))) == on_disk, "run: python -m schemas.jsonschema"


def test_regenerating_touches_only_the_event_components():
    document = orjson.loads(OPENAPI_DOCUMENT.read_bytes())
    generated = openapi_components()
    stale = {**document["components"]["schemas"], "Event": {"oneOf": [{"$ref": REF.format(name="GoneEvent")}]}}
    stale["GoneEvent"] = {"type": "object", "properties": {"data": {"$ref": REF.format(name="GoneData")}}}
    stale["GoneData"] = {"type": "object"}
    stale.pop("CartItemAddedEvent")
    regenerated = with_event_components({**document, "components": {**document["components"], "schemas": stale}})
    schemas = regenerated["components"]["schemas"]
    assert "GoneEvent" not in schemas and "GoneData" not in schemas
    assert {name: schemas[name] for name in generated} == generated
    untouched = set(document["components"]["schemas"]) - set(generated)
    assert untouched and all(schemas[name] == document["components"]["schemas"][name] for name in untouched)
    assert regenerated["paths"] == document["paths"]
    assert list(schemas) == list(document["components"]["schemas"])
