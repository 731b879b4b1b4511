"""The export's file formats: JSON Lines (each record's value as logged, one per line) and Parquet
(typed envelope columns, the common ``data`` fields as columns, the whole ``data`` as JSON).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

import msgspec
import orjson

from schemas.events import EVENT_TYPES, Envelope, Event, type_name

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)
FORMATS: Final = ("jsonl", "parquet")

# Fields of ``data`` shared by several event types that get a typed (nullable string) column. No
# personal field (``email``, names, ``phone``, ``document``): which of them an export may carry is
# for the security issue to decide. The whole ``data`` is in the ``data`` column as JSON.
COMMON_FIELDS: Final = (
    "url",
    "referrerUrl",
    "title",
    "pageType",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utmi_cp",
    "utmi_p",
    "utmi_pc",
)
ENVELOPE_FIELDS: Final = ("id", "type", "subject", "time", "source", "dataschema", "partition", "offset")
COLUMNS: Final = (*ENVELOPE_FIELDS, *COMMON_FIELDS, "data")

_MICROSECOND: Final = timedelta(microseconds=1)


_TYPE_NAMES: Final[dict[type[Envelope], str]] = {cls: type_name(cls) for cls in EVENT_TYPES}


def event_type(event: Event) -> str:
    return _TYPE_NAMES[type(event)]


def parquet_row(event: Event, partition: int, offset: int) -> dict[str, Any]:
    """One row of the Parquet file: the envelope, the common fields (None where the type has none),
    ``data`` as JSON (upcast to the current version), and where the record is in the log."""
    return dict(zip(COLUMNS, parquet_cells(event, partition, offset), strict=True))


_JSON: Final = msgspec.json.Encoder()
# Per data type, the common fields it has (the others are None in every row of that type).
_COMMON_BY_TYPE: dict[type, tuple[int, ...]] = {}


def parquet_cells(event: Event, partition: int, offset: int) -> tuple[Any, ...]:
    """:func:`parquet_row`'s cells in ``COLUMNS`` order: the export's inner loop, kept lean."""
    data = event.data
    present = _COMMON_BY_TYPE.get(type(data))
    if present is None:
        names = getattr(type(data), "__struct_fields__", ())
        present = _COMMON_BY_TYPE[type(data)] = tuple(i for i, name in enumerate(COMMON_FIELDS) if name in names)
    common: list[Any] = [None] * len(COMMON_FIELDS)
    for index in present:
        value = getattr(data, COMMON_FIELDS[index])
        if value is not None:
            common[index] = value if isinstance(value, str) else str(value)
    return (
        event.id,
        _TYPE_NAMES[type(event)],
        event.subject,
        event.time,  # aware: Arrow stores the instant (UTC)
        event.source,
        event.dataschema,
        partition,
        offset,
        *common,
        _JSON.encode(data).decode(),
    )


def jsonl_line(value: bytes) -> bytes:
    """The record's value as it is, on one line (a value with line breaks, only possible as JSON
    whitespace, is re-encoded compactly)."""
    if b"\n" in value or b"\r" in value:
        value = orjson.dumps(orjson.loads(value))
    return value + b"\n"


# --- writers ------------------------------------------------------------------------------------


class Writer(Protocol):
    def write(self, event: Event, value: bytes, partition: int, offset: int) -> None: ...

    def close(self) -> None: ...


class JsonlWriter:
    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = open(path, "wb")

    def write(self, event: Event, value: bytes, partition: int, offset: int) -> None:
        self._file.write(jsonl_line(value))

    def close(self) -> None:
        self._file.close()


class RowGroups:
    """A Parquet file written a row group at a time: rows are tuples of cells in the schema's
    order, turned into Arrow columns every ``batch_rows`` (shared by the event and session exports)."""

    def __init__(self, path: Path, schema: Any, repeated: list[str], batch_rows: int = 50_000) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.schema = schema
        # Dictionary encoding only where values repeat (ids, URLs and JSON would only pay for trying).
        self._writer = pq.ParquetWriter(str(path), schema, compression="zstd", use_dictionary=repeated)
        self._rows: list[tuple[Any, ...]] = []
        self._batch_rows = batch_rows

    def append(self, row: tuple[Any, ...]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self._batch_rows:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            pa = self._pa
            columns = zip(*self._rows, strict=True)
            arrays = [pa.array(column, type=field.type) for column, field in zip(columns, self.schema, strict=True)]
            self._writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
            self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


class ParquetWriter:
    def __init__(self, path: Path, batch_rows: int = 50_000) -> None:
        import pyarrow as pa

        string = pa.string()
        self.schema = pa.schema(
            [
                pa.field("id", string, nullable=False),
                pa.field("type", string, nullable=False),
                pa.field("subject", string, nullable=False),
                pa.field("time", pa.timestamp("us", tz="UTC"), nullable=False),
                pa.field("source", string, nullable=False),
                pa.field("dataschema", string),
                pa.field("partition", pa.int32(), nullable=False),
                pa.field("offset", pa.int64(), nullable=False),
                *(pa.field(name, string) for name in COMMON_FIELDS),
                pa.field("data", string, nullable=False),
            ]
        )
        repeated = ["type", "source", "dataschema", "pageType", *(n for n in COMMON_FIELDS if n.startswith("utm"))]
        self._groups = RowGroups(path, self.schema, repeated, batch_rows)

    def write(self, event: Event, value: bytes, partition: int, offset: int) -> None:
        self._groups.append(parquet_cells(event, partition, offset))

    def close(self) -> None:
        self._groups.close()


def open_writer(fmt: str, path: Path) -> Writer:
    return ParquetWriter(path) if fmt == "parquet" else JsonlWriter(path)
