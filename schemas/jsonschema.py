"""The JSON Schema (draft 2020-12) files of the contract, generated from the Python types.

``python -m schemas.jsonschema`` rewrites ``schemas/json/``; a test fails when the files and the
types drift apart. One file per event type and version, plus ``envelope.schema.json`` that accepts
any current event.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec

from schemas import upcasters
from schemas.events import EVENT_TYPES, Event
from schemas.legacy import PageViewedV1

DRAFT = "https://json-schema.org/draft/2020-12/schema"
FOLDER = Path(__file__).resolve().parent / "json"

# (type, version) -> the struct of that version; the current ones come from the union.
VERSIONS: dict[tuple[str, int], type[msgspec.Struct]] = {
    **{(str(cls.__struct_config__.tag), upcasters.current_version(str(cls.__struct_config__.tag))): cls
       for cls in EVENT_TYPES},
    ("navigation.page_viewed", 1): PageViewedV1,
}  # fmt: skip


def _pin_version(schema: dict[str, Any], event_type: str, version: int) -> dict[str, Any]:
    # Absent or null means "the current version" (the API stamps it); else the exact URI.
    envelope = schema["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    envelope["properties"]["dataschema"] = {
        "anyOf": [{"const": upcasters.schema_uri(event_type, version)}, {"type": "null"}],
        "default": None,
    }
    return schema


def documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document."""
    files: dict[str, dict[str, Any]] = {}
    for (event_type, version), struct in sorted(VERSIONS.items()):
        schema = _pin_version(msgspec.json.schema(struct), event_type, version)
        files[f"{event_type}.v{version}.schema.json"] = {
            "$schema": DRAFT,
            "$id": upcasters.schema_uri(event_type, version),
            "title": f"{event_type} v{version}",
            **schema,
        }
    envelope = msgspec.json.schema(Event)
    for event_type_version in VERSIONS:
        event_type, version = event_type_version
        if version == upcasters.current_version(event_type):
            struct_name = VERSIONS[event_type_version].__name__
            envelope["$defs"][struct_name]["properties"]["dataschema"] = {
                "anyOf": [{"const": upcasters.schema_uri(event_type, version)}, {"type": "null"}],
                "default": None,
            }
    files["envelope.schema.json"] = {
        "$schema": DRAFT,
        "$id": f"{upcasters.SCHEMA_PREFIX}envelope",
        "title": "any current session event (CloudEvents 1.0, structured JSON)",
        **envelope,
    }
    return files


def render(document: dict[str, Any]) -> bytes:
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def main() -> int:
    FOLDER.mkdir(exist_ok=True)
    for name, document in documents().items():
        (FOLDER / name).write_bytes(render(document))
        print(f"wrote {FOLDER / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
