"""The files of ``sessionctl export --sessions``: one session document per line (JSON Lines), or a
Parquet row per session with the common values as typed columns and the whole document as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final, Protocol

from schemas.session import SessionState, encode_view
from streams.tools.export.writers import RowGroups

# Typed (nullable string) columns of the Parquet file: (column, namespace, key). The commercial
# context the segment is made of, no personal field; the whole document is in ``document``.
SESSION_FIELDS: Final = (
    ("utm_source", "public", "utm_source"),
    ("utm_medium", "public", "utm_medium"),
    ("utm_campaign", "public", "utm_campaign"),
    ("channel", "store", "channel"),
    ("countryCode", "store", "countryCode"),
    ("currencyCode", "store", "currencyCode"),
    ("cultureInfo", "store", "cultureInfo"),
    ("regionId", "checkout", "regionId"),
    ("isAuthenticated", "authentication", "isAuthenticated"),
)
SESSION_COLUMNS: Final = (
    "id",
    "first_event_time",
    "last_event_time",
    "event_count",
    *(name for name, _, _ in SESSION_FIELDS),
    "document",
)


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def session_row(state: SessionState) -> dict[str, Any]:
    """One row of the Parquet file: the meta, the common values (strings, None where absent), the
    document as the service API serves it."""
    row: dict[str, Any] = {
        "id": state.id,
        "first_event_time": parse_time(state.meta.first_event_time),
        "last_event_time": parse_time(state.meta.last_event_time),
        "event_count": state.meta.event_count,
    }
    for name, namespace, key in SESSION_FIELDS:
        entry = state.namespaces.get(namespace, {}).get(key)
        value = None if entry is None else entry.get("value")
        row[name] = None if value is None else str(value)
    row["document"] = encode_view(state).decode()
    return row


class SessionWriter(Protocol):
    def write(self, state: SessionState) -> None: ...

    def close(self) -> None: ...


class JsonlSessionWriter:
    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = open(path, "wb")

    def write(self, state: SessionState) -> None:
        self._file.write(encode_view(state) + b"\n")

    def close(self) -> None:
        self._file.close()


class ParquetSessionWriter:
    def __init__(self, path: Path, batch_rows: int = 50_000) -> None:
        import pyarrow as pa

        string = pa.string()
        stamp = pa.timestamp("us", tz="UTC")
        self.schema = pa.schema(
            [
                pa.field("id", string, nullable=False),
                pa.field("first_event_time", stamp, nullable=False),
                pa.field("last_event_time", stamp, nullable=False),
                pa.field("event_count", pa.int64(), nullable=False),
                *(pa.field(name, string) for name, _, _ in SESSION_FIELDS),
                pa.field("document", string, nullable=False),
            ]
        )
        self._groups = RowGroups(path, self.schema, [name for name, _, _ in SESSION_FIELDS], batch_rows)

    def write(self, state: SessionState) -> None:
        self._groups.append(tuple(session_row(state).values()))

    def close(self) -> None:
        self._groups.close()


def open_session_writer(fmt: str, path: Path) -> SessionWriter:
    return ParquetSessionWriter(path) if fmt == "parquet" else JsonlSessionWriter(path)
