"""The storefront's operations on one worker, shared by its views: find, create and change sessions
(append the events, wait until they are folded), and the answers and cookies that carry them."""

from __future__ import annotations

import logging
import re
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from projections import regions
from projections.channels import choose_for
from projections.items import Items, select
from projections.segment import Segment, encode_segment_token, segment_of
from projections.session import apply
from schemas.events import Event
from schemas.session import SessionState, decode_state, encode_state
from streams.config.settings import SettingsError
from streams.fold.store import StoreClosed
from streams.kafka.producer import Record, event_record
from streams.web.appending import EventLog
from streams.web.errors import HttpError, json_response, unavailable
from streams.web.identity import COOKIE_PREFIX, IdentityKeys
from streams.web.regions import ask_region
from streams.web.routing import assignment_known, forward_if_not_owner, owner_of
from streams.web.session_apps import MAX_ROUNDS, SessionApps, load_manifest
from streams.web.session_changes import (
    NO_ORIGIN,
    Identity,
    Origin,
    PublicChange,
    check_public,
    cookie_changes,
    identity_events,
    new_event,
    read_key,
)

if TYPE_CHECKING:
    from streams.control.engine import Engine

log = logging.getLogger(__name__)


# The account selector node-vtex-api's JanusClient adds to every call (the VTEX gateway routes by
# it): it picks the account of a new session and, like ``items``, never lands in ``public``.
ACCOUNT_PARAM = "an"
_ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# The subject of the throw-away fold that derives a default segment (no session is stored).
_NO_SESSION = "00000000-0000-0000-0000-000000000000"
# Cache-Control of each kind of answer. A session answer is one shopper's (and sets their cookie):
# never stored. A segment read by cookie depends on the cookie: the browser's only, revalidated.
# A segment read by token is a pure function of the URL (the token and the query overrides): the
# same bytes forever, for everyone (node-vtex-api caches it as "immutable" too).
NO_STORE = "no-store"
BY_COOKIE = "private, no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


class SessionService:
    """The storefront operations on one worker: find, create and change sessions."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.log = EventLog.of(engine)
        self.host_accounts = engine.settings.host_account_map
        jwks, issuer = engine.settings.identity_jwks_file, engine.settings.identity_issuer
        self.identity = IdentityKeys(jwks, issuer) if jwks else None
        manifest = engine.settings.session_apps_file
        self.apps = SessionApps(load_manifest(manifest), engine.settings.session_apps_timeout_s) if manifest else None
        for host, account in self.host_accounts.items():
            if self.accounts and account not in self.accounts:
                raise SettingsError(
                    f"SESSIONS_HOST_ACCOUNTS: host {host!r} maps to account {account!r}, "
                    "which the rules file does not define under [accounts]"
                )

    @property
    def accounts(self) -> frozenset[str]:
        """The accounts of the rules served now (a switch of table generation may change them)."""
        return frozenset(self.engine.rules.accounts)

    def origin(self, request: web.Request) -> Origin:
        """The account of a new session of this request (:meth:`account`) and the binding whose
        ``host`` is the request's (when that binding is the account's)."""
        account = self.account(request)
        found = self.engine.rules.account_of_host(_bare_host(request))
        if found is None:
            return Origin(account, None)
        name, binding = found
        if account is None:
            return Origin(name, binding.id)  # the binding's host names its account
        return Origin(account, binding.id if account == name else None)

    def account(self, request: web.Request) -> str | None:
        """The account a new session of this request belongs to: ``an=<account>``, else the
        request's Host in ``host_accounts``, else None (the rules' ``default_account``, or the
        account of the binding whose host it is)."""
        given = request.query.get(ACCOUNT_PARAM)
        if given is not None:
            if not _ACCOUNT_NAME.match(given):
                raise HttpError(
                    400,
                    "invalid_account",
                    f"`{ACCOUNT_PARAM}` must be an account name: 1 to 100 letters, digits, '.', '_' or '-'",
                    [{"path": ACCOUNT_PARAM}],
                )
            if self.accounts and given not in self.accounts:
                raise HttpError(
                    400,
                    "unknown_account",
                    f"`{ACCOUNT_PARAM}` names account {given!r}, which this deployment does not serve",
                    [{"path": ACCOUNT_PARAM}],
                )
            return given
        if self.host_accounts:
            host = (request.host or "").lower()
            return self.host_accounts.get(host) or self.host_accounts.get(host.rsplit(":", 1)[0])
        return None

    def default_segment(self, origin: Origin) -> Segment:
        """The segment a new session of ``origin`` would have, derived without storing anything."""
        created = new_event("session.created", _NO_SESSION, origin.created_data())
        return segment_of(apply(None, created, self.engine.rules).namespaces)

    async def new_session_id(self) -> str:
        # A new session may take any id: draw one this worker owns, so its writes need no hop.
        await assignment_known(self.engine)
        for _ in range(256):
            candidate = str(uuid.uuid4())
            if owner_of(self.engine, candidate) is None:
                return candidate
        raise unavailable("this worker owns no partition right now")

    async def forward_if_not_owner(self, token: str | None, request: web.Request, body: bytes) -> web.Response | None:
        """The answer of the worker owning the token's session, when that is another worker; None
        when this worker serves the request (it owns the session, or the token names none)."""
        session_id = self.engine.tokens.session_id(token)
        if session_id is None:
            return None
        return await forward_if_not_owner(self.engine, session_id, request, body)

    def current(self, token: str | None) -> SessionState | None:
        """The token's session, read here (``forward_if_not_owner`` came first); None when the token
        is not valid or the session is gone."""
        session_id = self.engine.tokens.session_id(token)
        if session_id is None:
            return None
        try:
            raw = self.engine.read_session(session_id)
        except StoreClosed:
            raise unavailable("the session's partition is being restored or moving between workers") from None
        return decode_state(raw) if raw is not None else None

    async def append_and_wait(self, records: list[Record], last_event_id: str) -> SessionState:
        """The session right after the change folded (read-your-writes), or the answer why not."""
        folded = await self.log.append_and_wait(records, last_event_id)
        if folded is None:
            # The person on call's thread to pull: which event, on which partition, waited how long.
            log.warning(
                "event %s (partition %d) not folded within %.0fs of its append: answered 503",
                last_event_id, self.engine.fold.partition_of(records[-1].key), self.log.wait_s,
            )  # fmt: skip
            raise unavailable(
                "the change is accepted but not yet applied; it will be, once: retry the read shortly",
                retry_after_s=1,
            )
        if not folded:  # b"": a session.erased folded right after the change (streams.fold.batch)
            raise HttpError(409, "session_erased", "the session was erased while the change was applied")
        return decode_state(folded)

    async def write(
        self,
        current: SessionState | None,
        public: PublicChange | None = None,
        origin: Origin = NO_ORIGIN,
        cookies: dict[str, str | None] | None = None,
        identity: Identity | None = None,
    ) -> SessionState:
        """Create a session of ``origin`` (when ``current`` is None), record changed ``cookies``
        (of :data:`RECORDED_COOKIES`; None: not sent) and set public values, then wait for the
        fold. What the change asks is checked against what it would fold to before anything is
        appended: a sales channel the store refuses, a regions service's answer to record."""
        events: list[Event] = []
        if current is None:
            session_id = await self.new_session_id()
            events.append(new_event("session.created", session_id, origin.created_data()))
        else:
            session_id = current.id
        recorded = cookie_changes(current, cookies or {})
        if recorded:
            events.append(new_event("session.cookies_recorded", session_id, {"cookies": recorded}))
        if identity is not None:
            events += identity_events(current, session_id, identity)
        if public is not None and public.values:
            check_public(public)
            data = {"public": {k: {"value": v} for k, v in public.values.items()}}
            events.append(new_event("session.public_set", session_id, data))
        predicted = self._predict(current, events)
        if public is not None and "sc" in public.values and predicted is not None:
            self._check_channel(predicted, public)
        region = await self._region_lookup(predicted) if predicted is not None else None
        if region is not None:
            # First, so the change folds with the answer already there (its state is the final one).
            events.insert(1 if current is None else 0, region)
            predicted = self._predict(current, events)
        if self.apps is not None and predicted is not None:
            predicted = await self._transform(current, events, predicted)
        if not events:
            assert current is not None
            return current
        records = [event_record(e) for e in events]
        self._check_sizes(predicted, records)
        return await self.append_and_wait(records, events[-1].id)

    def identity_of(self, request: web.Request, current: SessionState | None, origin: Origin) -> Identity | None:
        """What the request's identity cookie vouches for (None: no keys configured, so the
        cookie is not read at all)."""
        if self.identity is None:
            return None
        account = (current.facts.get("account") if current is not None else origin.account) or (
            self.engine.rules.default_account
        )
        if account is None:
            return Identity(None)
        return Identity(self.identity.login(request.cookies.get(COOKIE_PREFIX + account), account))

    def _predict(self, current: SessionState | None, events: list[Event]) -> SessionState | None:
        """The session the events would fold to (the fold's own code, so the API's checks and
        the fold never disagree)."""
        predicted = current
        for event in events:
            predicted = apply(predicted, event, self.engine.rules)
        return predicted

    def _check_channel(self, predicted: SessionState, public: PublicChange) -> None:
        """VTEX's store-session refuses a sales channel the shopper may not have: 401 for an
        anonymous shopper, 403 for a logged-in one."""
        choice = choose_for(lambda key: read_key(predicted, key), self.engine.rules)
        if choice.refused is None:
            return
        authenticated = read_key(predicted, "profile.isAuthenticated") == "true"
        status, code = (403, "sales_channel_forbidden") if authenticated else (401, "sales_channel_not_allowed")
        raise HttpError(status, code, choice.refused, [{"path": public.path("sc")}])

    async def _region_lookup(self, predicted: SessionState) -> Event | None:
        """A ``checkout.region_resolved`` event with the regions service's answer for the
        session's region inputs, when a service is configured and the log holds no answer for
        them yet; None otherwise (and when the service gives none: the table answers)."""
        if not self.settings.regions_url or read_key(predicted, "public.regionId") is not None:
            return None
        inputs = regions.region_inputs(
            read_key(predicted, "public.country"),
            read_key(predicted, "public.postalCode"),
            read_key(predicted, "public.geoCoordinates"),
        )
        if inputs is None or regions.recorded(predicted.facts.get("region"), inputs)[0]:
            return None
        answered, region = await ask_region(self.engine, inputs, read_key(predicted, "store.channel"))
        if not answered:
            return None
        data = {"key": regions.lookup_key(inputs), "regionId": region}
        return new_event("checkout.region_resolved", predicted.id, data)

    async def _transform(
        self, current: SessionState | None, events: list[Event], predicted: SessionState
    ) -> SessionState:
        """Call the session apps due (streams.web.session_apps), round after round, appending
        each answer to ``events`` as a ``session.transformed``; the session they make."""
        assert self.apps is not None
        for _ in range(MAX_ROUNDS):
            answered = await self.apps.answers(self.engine, predicted)
            if not answered:
                return predicted
            for app, asked, outputs in answered:
                data = {"app": app.name, "inputs": asked, "outputs": outputs}
                events.append(new_event("session.transformed", predicted.id, data))
            folded = self._predict(current, events)
            assert folded is not None  # the events are those of an existing (predicted) session
            predicted = folded
        log.warning("session apps still changing each other's inputs after %d rounds: stopping there", MAX_ROUNDS)
        return predicted

    def _check_sizes(self, predicted: SessionState | None, records: list[Record]) -> None:
        """Refuse a change the log or the table could not take, before appending anything."""
        limit = self.settings.max_event_bytes
        if any(len(record.value) > limit for record in records):
            raise HttpError(413, "event_too_large", f"the change is over {limit} bytes")
        limit = self.settings.max_session_bytes
        if predicted is not None and len(encode_state(predicted)) > limit:
            raise HttpError(413, "session_too_large", f"the session would grow over {limit} bytes")

    def respond(self, state: SessionState, items: Items | None, status: int) -> web.Response:
        segment_token = encode_segment_token(segment_of(state.namespaces))
        session_token = self.engine.tokens.issue(state.id, state.meta.event_count)
        if items is not None:
            body: Any = {"id": state.id, "namespaces": select(state.namespaces, items)}
        else:
            body = {"sessionToken": session_token, "segmentToken": segment_token}
        response = json_response(body, status=status)
        response.headers["Cache-Control"] = NO_STORE
        self.set_cookies(response, session_token, segment_token)
        return response

    def set_cookies(self, response: web.Response, session_token: str, segment_token: str) -> None:
        # The session cookie comes first: node-vtex-api up to 6.45.4 reads only the first
        # Set-Cookie header of a session answer (and of a segment answer, see segment_response).
        # Written by hand: http.cookies would wrap base64's "=", "/" and "+" in quotes, which
        # browsers keep as part of the value (RFC 6265 allows these characters unquoted).
        attributes = self._cookie_attributes()
        response.headers.add("Set-Cookie", f"{self.settings.session_cookie}={session_token}; {attributes}; HttpOnly")
        self.set_segment_cookie(response, segment_token)

    def set_segment_cookie(self, response: web.Response, segment_token: str) -> None:
        # Not HttpOnly: storefront scripts read the segment (it holds no personal data).
        cookie = f"{self.settings.segment_cookie}={segment_token}; {self._cookie_attributes()}"
        response.headers.add("Set-Cookie", cookie)

    def segment_response(self, segment: Segment, by_token: bool = False) -> web.Response:
        """A segment answer: its token is the first (and only) Set-Cookie, so a client that keeps
        the cookie as the segment's token (node-vtex-api ``getOrCreateSegment``) holds this very
        segment. ``by_token``: the answer is a function of its URL alone (cacheable for good)."""
        response = json_response(segment)
        if by_token:
            response.headers["Cache-Control"] = IMMUTABLE
        else:
            response.headers["Cache-Control"] = BY_COOKIE
            response.headers["Vary"] = "Cookie"
        self.set_segment_cookie(response, encode_segment_token(segment))
        return response

    def _cookie_attributes(self) -> str:
        attributes = f"Path=/; Max-Age={self.settings.session_ttl_s}; SameSite=Lax"
        if self.settings.cookie_domain:
            attributes += f"; Domain={self.settings.cookie_domain}"
        if self.settings.cookie_secure:
            attributes += "; Secure"
        return attributes


def _bare_host(request: web.Request) -> str:
    return (request.host or "").lower().rsplit(":", 1)[0]
