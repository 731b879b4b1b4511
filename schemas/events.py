"""The event contract in Python: CloudEvents 1.0 envelopes, one frozen struct per event type.

The ``type`` attribute is the tag of a msgspec tagged union, so one prebuilt decoder turns bytes
into the right struct and names the offending field on failure (``$.data.url``). The JSON Schema
files beside this module say the same thing for emitters in other languages.

An event type is one struct here plus its member in ``Event``; what else the system knows of it is
declared on the struct (``storefront``: may a storefront send it; ``previous``: its older versions,
oldest first, each with the ``upcast`` that lifts a record to the next one) and derived from there:
the list of types, the schema version, the JSON Schema files, the OpenAPI components.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal, TypeAlias, cast, get_args

import msgspec
from msgspec import Meta, Struct

from schemas import upcasters

SESSION_ID_PATTERN: Final = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

SessionId = Annotated[
    str,
    Meta(pattern=SESSION_ID_PATTERN, description="a session id: a lowercase canonical UUID"),
]
EventId = Annotated[str, Meta(min_length=1, max_length=128)]
Source = Annotated[str, Meta(min_length=1, max_length=256)]
EventTime = Annotated[datetime, Meta(tz=True)]
Url = Annotated[str, Meta(min_length=1, max_length=4096)]
ShortText = Annotated[str, Meta(max_length=1024)]
SpecVersion = Literal["1.0"]


class Envelope(Struct, frozen=True, tag_field="type"):
    """What every event carries (CloudEvents 1.0); each type adds its ``data`` and ``dataschema``
    and is told apart by ``type``, the tag."""

    # Declarations, not fields: see the module's docstring.
    storefront: ClassVar[bool] = False
    previous: ClassVar[tuple[type[Envelope], ...]] = ()

    specversion: SpecVersion
    id: EventId
    source: Source
    subject: SessionId
    time: EventTime

    @staticmethod
    def upcast(record: dict[str, Any]) -> dict[str, Any]:
        """An older version's record (parsed JSON) -> the same record in the next version's shape."""
        raise NotImplementedError("the current version of an event type has no next version")


PageType = Literal["home", "category", "product", "search", "cart", "checkout", "other"]


class PageViewedDataV1(Struct, frozen=True):
    url: Url
    referrer: Url | None = None
    title: ShortText | None = None


class PageViewedV1(Envelope, frozen=True, tag="navigation.page_viewed"):
    """Version 1, still accepted when ``dataschema`` names it: upcast to v2 (``referrer`` -> ``referrerUrl``)."""

    data: PageViewedDataV1
    dataschema: str | None = None

    @staticmethod
    def upcast(record: dict[str, Any]) -> dict[str, Any]:
        # v2 names the referrer like the url it is (``referrerUrl``) and adds ``pageType``.
        if not isinstance(record.get("data"), dict):
            return record  # let the decoder name what is wrong
        data = dict(record["data"])
        if "referrer" in data:
            data["referrerUrl"] = data.pop("referrer")
        data.setdefault("pageType", "other")
        return {**record, "data": data}


class PageViewedData(Struct, frozen=True, forbid_unknown_fields=False):
    """Version 2 (v1 had ``referrer`` for ``referrerUrl`` and no ``pageType``)."""

    url: Url
    referrerUrl: Url | None = None
    title: ShortText | None = None
    pageType: PageType = "other"


class PageViewed(Envelope, frozen=True, tag="navigation.page_viewed"):
    """A storefront page was shown; the url's query-string parameters land in ``public``."""

    storefront = True
    previous = (PageViewedV1,)

    data: PageViewedData
    dataschema: str | None = None


class CampaignClickedData(Struct, frozen=True):
    utm_source: ShortText | None = None
    utm_medium: ShortText | None = None
    utm_campaign: ShortText | None = None
    utmi_cp: ShortText | None = None
    utmi_p: ShortText | None = None
    utmi_pc: ShortText | None = None
    url: Url | None = None


class CampaignClicked(Envelope, frozen=True, tag="navigation.campaign_clicked"):
    """A campaign link was followed; its utm values land in ``public``."""

    storefront = True

    data: CampaignClickedData
    dataschema: str | None = None


PublicKey = Annotated[str, Meta(min_length=1, max_length=256)]


class PublicValue(Struct, frozen=True):
    value: Any


class PublicSetData(Struct, frozen=True):
    public: dict[PublicKey, PublicValue]


class PublicSet(Envelope, frozen=True, tag="session.public_set"):
    """The storefront wrote keys of the ``public`` namespace (merged; other keys are kept)."""

    data: PublicSetData
    dataschema: str | None = None


class SessionCreatedData(Struct, frozen=True):
    account: ShortText | None = None
    # The binding of the host the session was made on (a rules file's binding ``host``).
    binding: ShortText | None = None


class SessionCreated(Envelope, frozen=True, tag="session.created"):
    """The API opened a session (the first event of a session it issued a token for)."""

    data: SessionCreatedData
    dataschema: str | None = None


Email = Annotated[str, Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
PriceTable = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[^,]+$")]


class LoggedInData(Struct, frozen=True):
    """What the identity provider knows of the shopper, recorded when they log in."""

    userId: Annotated[str, Meta(min_length=1, max_length=128)]
    email: Email
    firstName: ShortText | None = None
    lastName: ShortText | None = None
    phone: ShortText | None = None
    document: ShortText | None = None
    priceTables: list[PriceTable] = []
    # The identity token said the shopper is an administrator (VTEX ID's ``audience: admin``):
    # ``authentication.adminUserId``/``adminUserEmail`` too.
    admin: bool | None = None
    # The storefront API verified it from the identity cookie (``VtexIdclientAutCookie_<account>``):
    # a request without a valid cookie logs this login out again; a backend's login stays.
    viaCookie: bool | None = None


class LoggedIn(Envelope, frozen=True, tag="auth.logged_in"):
    """A trusted service vouches that the shopper of this session logged in."""

    data: LoggedInData
    dataschema: str | None = None


class Empty(Struct, frozen=True, forbid_unknown_fields=True):
    pass


class LoggedOut(Envelope, frozen=True, tag="auth.logged_out"):
    """A trusted service reports the logout; the session (and its id) stays, anonymous again."""

    data: Empty = Empty()
    dataschema: str | None = None


class SessionErased(Envelope, frozen=True, tag="session.erased"):
    """The service API erased the session (right to be forgotten): the fold deletes it, and a
    replay or rebuild ends it here too. Its data key is destroyed beside it (``streams.privacy``)."""

    data: Empty = Empty()
    dataschema: str | None = None


Sku = Annotated[str, Meta(min_length=1, max_length=128)]
Quantity = Annotated[int, Meta(ge=1, le=10_000)]
Price = Annotated[float, Meta(ge=0, le=1_000_000_000, description="the price of one unit, a JSON number")]
CurrencyCode = Annotated[str, Meta(pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. BRL")]


class CartItemAddedData(Struct, frozen=True):
    sku: Sku
    quantity: Quantity
    price: Price
    currency: CurrencyCode


class CartItemAdded(Envelope, frozen=True, tag="cart.item_added"):
    """Items went into the cart; the ``cart`` namespace keeps the totals (``cartItems``,
    ``cartValue``, ``cartCurrency``). An item in another currency than the cart's is refused."""

    storefront = True

    data: CartItemAddedData
    dataschema: str | None = None


CookieName = Annotated[str, Meta(min_length=1, max_length=256)]
CookieValue = Annotated[str, Meta(max_length=4096)]


class CookiesRecordedData(Struct, frozen=True):
    """The values (null: the cookie is gone) of the request cookies the session records."""

    cookies: dict[CookieName, CookieValue | None]


class CookiesRecorded(Envelope, frozen=True, tag="session.cookies_recorded"):
    """The API saw a change in a cookie the session records (VTEX's ``cookie`` namespace, e.g.
    ``checkout.vtex.com``, the storefront's cart): recorded as it was, for the transformers."""

    data: CookiesRecordedData
    dataschema: str | None = None


LookupKey = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="projections.regions.lookup_key")]
RegionId = Annotated[str, Meta(min_length=1, max_length=512)]


class RegionResolvedData(Struct, frozen=True):
    key: LookupKey  # what was asked: a digest of the country, postal code and coordinates
    regionId: RegionId | None = None  # None: the service knows no region there


class RegionResolved(Envelope, frozen=True, tag="checkout.region_resolved"):
    """The API asked the regions service for the session's region before appending its change,
    and recorded the answer, so a replay never asks again."""

    data: RegionResolvedData
    dataschema: str | None = None


AppName = Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$", description="a session app's name")]
NamespaceName = Annotated[str, Meta(min_length=1, max_length=128)]
InputsDigest = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$", description="a digest of the inputs the app was sent")]


class SessionTransformedData(Struct, frozen=True):
    app: AppName
    inputs: InputsDigest
    # The app's answer, restricted to its declared outputs: a value overwrites, "" clears, a key
    # the app left out keeps its value (VTEX's merge of transform answers).
    outputs: dict[NamespaceName, dict[PublicKey, PublicValue]]


class SessionTransformed(Envelope, frozen=True, tag="session.transformed"):
    """A session app answered the storefront API's transform call (VTEX's
    ``POST /_v/<app>/session/transform``) before the change that woke it was appended: recorded,
    so a replay, a rebuild or a timeline never calls the app."""

    data: SessionTransformedData
    dataschema: str | None = None


# The contract: every member is a full envelope tagged by its ``type``; everything else is derived.
Event: TypeAlias = (
    PageViewed
    | CampaignClicked
    | PublicSet
    | SessionCreated
    | LoggedIn
    | LoggedOut
    | CartItemAdded
    | SessionErased
    | CookiesRecorded
    | RegionResolved
    | SessionTransformed
)
EVENT_TYPES: Final[tuple[type[Envelope], ...]] = get_args(Event)


def type_name(cls: type[Struct]) -> str:
    return str(cls.__struct_config__.tag)


def schema_version(cls: type[Envelope]) -> int:
    """The current version of an event type: one more than the versions before it."""
    return len(cls.previous) + 1


EVENT_CLASSES: Final[dict[str, type[Envelope]]] = {type_name(cls): cls for cls in EVENT_TYPES}
EVENT_TYPE_NAMES: Final[frozenset[str]] = frozenset(EVENT_CLASSES)
# Types a storefront may emit through POST /api/events; the others need a trusted service key.
STOREFRONT_EVENT_TYPES: Final[frozenset[str]] = frozenset(name for name, cls in EVENT_CLASSES.items() if cls.storefront)


def current_version(name: str) -> int:
    return schema_version(EVENT_CLASSES[name])


def upcast(record: dict[str, Any], name: str, version: int) -> dict[str, Any]:
    """Lift a record of ``version`` to the current version, one step at a time."""
    for older in EVENT_CLASSES[name].previous[version - 1 :]:
        record = older.upcast(record)
    return {**record, "dataschema": upcasters.schema_uri(name, current_version(name))}


class EventDecodeError(ValueError):
    """A record that is not a valid event; ``path`` names the field (``$.data.url``) when known."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _Head(Struct):
    """What decides how to decode the rest: the type and the schema version."""

    type: str = ""
    dataschema: str | None = None


_decoder: Final[msgspec.json.Decoder[Event]] = msgspec.json.Decoder(Event)
_head_decoder: Final = msgspec.json.Decoder(_Head)
_encoder: Final = msgspec.json.Encoder()
_CURRENT_SCHEMA: Final[dict[type[Struct], str]] = {
    cls: upcasters.schema_uri(type_name(cls), schema_version(cls)) for cls in EVENT_TYPES
}


def _split_path(message: str) -> tuple[str, str]:
    # msgspec appends " - at `$.data.url`" to validation messages.
    head, sep, tail = message.rpartition(" - at `")
    if sep and tail.endswith("`"):
        return head, tail[:-1]
    return message, "$"


def _explain(exc: msgspec.ValidationError | msgspec.DecodeError) -> EventDecodeError:
    message, path = _split_path(str(exc))
    if "Invalid value" in message and path == "$.type":
        message = f"unknown event type; known: {', '.join(sorted(EVENT_TYPE_NAMES))}"
    elif "Object missing required field `type`" in message:
        message, path = "missing required field `type`", "$.type"
    elif message.startswith("Object missing required field"):
        field = message.split("`")[1]
        message, path = f"missing required field `{field}`", f"{path}.{field}"
    return EventDecodeError(message, path)


def _version(event_type: str, dataschema: Any) -> int:
    if dataschema is not None and not isinstance(dataschema, str):
        raise EventDecodeError("Expected `str`", "$.dataschema")
    version = upcasters.version_of(event_type, dataschema)
    current = current_version(event_type)
    if version is None or not 1 <= version <= current:
        raise EventDecodeError(
            f"unknown schema version for {event_type}; known: "
            + ", ".join(upcasters.schema_uri(event_type, v) for v in range(1, current + 1)),
            "$.dataschema",
        )
    return version


def decode_event(raw: bytes | str) -> Event:
    """Bytes of one JSON event (a log record) -> the typed event, upcast to the current version.

    A record without ``dataschema`` is version 1. Raises :class:`EventDecodeError`.
    """
    # Nearly every record is of the current version: one decode, and its own ``dataschema`` says
    # so. Anything else (an old version, an error to explain) takes the path below.
    try:
        event = _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError):
        pass
    else:
        if event.dataschema is not None and event.dataschema == _CURRENT_SCHEMA[type(event)]:
            return event
    try:
        head = _head_decoder.decode(raw)
        if head.type not in EVENT_TYPE_NAMES:
            return _decoder.decode(raw)  # raises the decoder's own error for the type
        version = _version(head.type, head.dataschema)
        if version == current_version(head.type):
            return _decoder.decode(raw)
        record = msgspec.json.decode(raw)
        return cast(Event, msgspec.convert(upcast(record, head.type, version), Event, strict=True))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _explain(exc) from None


def event_from_object(obj: Any) -> Event:
    """An event an emitter sent (parsed JSON) -> the typed event, stamped with its schema version.

    Without ``dataschema`` the emitter means the current version. Raises :class:`EventDecodeError`.
    """
    try:
        event_type = obj.get("type") if isinstance(obj, dict) else None
        if isinstance(event_type, str) and event_type in EVENT_TYPE_NAMES:
            current = current_version(event_type)
            dataschema = obj.get("dataschema")
            version = current if dataschema is None else _version(event_type, dataschema)
            if version < current:
                obj = upcast(obj, event_type, version)
            else:
                obj = {**obj, "dataschema": upcasters.schema_uri(event_type, current)}
        return cast(Event, msgspec.convert(obj, Event, strict=True))
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise _explain(exc) from None


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def ahead_of_clock_ms(time: datetime, clock_ms: int) -> int:
    """How far an event's ``time`` lies after ``clock_ms`` (0 when it does not): the clock of whoever
    recorded it, the API's at intake. Past a few minutes the event is refused: its session's
    lifetime runs from its latest event time, so one event stamped a day ahead would keep the
    session alive for a day."""
    return max(0, int(time.timestamp() * 1000) - clock_ms)


def too_far_ahead(time: datetime, clock_ms: int, max_skew_ms: int, clock: str) -> str:
    """Why an event's ``time`` is refused ("" when it is not): more than ``max_skew_ms`` after
    ``clock_ms``, the time ``clock`` names (the API's own clock at intake; for an event produced
    straight to Kafka, its record's timestamp, so that every fold of the log decides alike)."""
    ahead_ms = ahead_of_clock_ms(time, clock_ms)
    if ahead_ms <= max_skew_ms:
        return ""
    return f"the time is {ahead_ms / 1000:.0f}s ahead of {clock} (at most {max_skew_ms / 1000:g}s)"
