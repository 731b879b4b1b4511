"""Session tokens (pinned algorithm, rotation, expiry, claims) and service keys (digests, scopes),
without a worker. The same attacks against a running worker: ``tests/integration/test_security.py``."""

from __future__ import annotations

import hashlib
import time
import uuid

import jwt
import pytest
from faust.web import View

from streams.config.settings import Settings, SettingsError
from streams.web.service_auth import Access, ServiceKeys, page, public, requires
from streams.web.tokens import SessionTokens, key_id

pytestmark = pytest.mark.unit

OLD = "o" * 64
NEW = "n" * 64
GONE = "g" * 64
SID = str(uuid.uuid4())


def claims(**extra: object) -> dict:
    now = int(time.time())
    return {"id": SID, "version": 1, "sub": "session", "iat": now, "exp": now + 600, "jti": "j", **extra}


def test_a_token_names_its_key_and_holds_only_the_id_and_token_metadata():
    token = SessionTokens([NEW, OLD], 600).issue(SID, 3)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "HS256", "typ": "JWT", "kid": key_id(NEW)}
    assert NEW not in token and key_id(NEW) != NEW
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) == {"id", "version", "sub", "iat", "exp", "jti"}
    assert SessionTokens([NEW, OLD], 600).session_id(token) == SID


def test_tokens_of_an_older_key_stay_valid_and_rotated_out_keys_are_dead():
    by_old = SessionTokens([OLD], 600).issue(SID, 1)
    assert SessionTokens([NEW, OLD], 600).session_id(by_old) == SID
    assert SessionTokens([NEW], 600).session_id(by_old) is None
    by_gone = SessionTokens([GONE], 600).issue(SID, 1)
    assert SessionTokens([NEW, OLD], 600).session_id(by_gone) is None


def test_a_token_issued_before_kids_is_checked_against_every_key():
    legacy = jwt.encode(claims(), OLD, algorithm="HS256")
    assert SessionTokens([NEW, OLD], 600).session_id(legacy) == SID
    assert SessionTokens([NEW], 600).session_id(legacy) is None


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda: jwt.encode(claims(), None, algorithm="none"), id="alg-none"),
        pytest.param(
            lambda: jwt.encode(claims(), None, algorithm="none", headers={"kid": key_id(NEW)}), id="alg-none-kid"
        ),
        pytest.param(lambda: jwt.encode(claims(), NEW, algorithm="HS512"), id="other-hmac"),
        pytest.param(lambda: jwt.encode(claims(), NEW, algorithm="HS384", headers={"kid": key_id(NEW)}), id="hs384"),
        pytest.param(lambda: jwt.encode(claims(exp=int(time.time()) - 1), NEW, algorithm="HS256"), id="expired"),
        pytest.param(
            lambda: jwt.encode(claims(), GONE, algorithm="HS256", headers={"kid": key_id(NEW)}), id="wrong-key"
        ),
        pytest.param(lambda: jwt.encode(claims(sub="other"), NEW, algorithm="HS256"), id="not-a-session-token"),
        pytest.param(lambda: jwt.encode(claims(id="../x"), NEW, algorithm="HS256"), id="bad-id"),
        pytest.param(lambda: "not.a.token", id="garbage"),
    ],
)
def test_forged_tokens_name_no_session(forge):
    assert SessionTokens([NEW, OLD], 600).session_id(forge()) is None


def test_expiry_is_enforced():
    tokens = SessionTokens([NEW], 60)
    token = tokens.issue(SID, 1, now=time.time() - 61)
    assert tokens.session_id(token) is None
    assert tokens.session_id(tokens.issue(SID, 1)) == SID


def test_signing_keys_rotate_through_settings_and_the_single_key_keeps_working():
    rotated = Settings.from_env(
        {"SESSIONS_SESSION_SIGNING_KEYS": f"{NEW}, {OLD}", "SESSIONS_SESSION_SIGNING_KEY": GONE}
    )
    assert rotated.session_signing_key_list == [NEW, OLD]
    assert Settings.from_env({"SESSIONS_SESSION_SIGNING_KEY": OLD}).session_signing_key_list == [OLD]
    assert Settings().session_signing_key_list == []
    with pytest.raises(SettingsError, match="SESSION_SIGNING_KEYS entry 1"):
        Settings.from_env({"SESSIONS_SESSION_SIGNING_KEYS": f"{NEW} short"})
    assert NEW not in repr(rotated)


def test_service_keys_are_held_as_digests_and_answer_their_scopes():
    key = "k" * 24
    keys = ServiceKeys({key: frozenset({"sessions:read"})})
    assert keys.scopes(key) == {"sessions:read"}
    assert keys.scopes(key + "x") is None and keys.scopes("") is None
    held = repr(vars(keys))
    assert key not in held and hashlib.sha256(key.encode()).hexdigest() not in held  # bytes, not the key


def test_a_route_without_a_declared_access_stops_the_start():
    registry: dict = {}

    class Pages:
        def page(self, path):
            return lambda view: view

    class Declared(View):
        @requires("sessions:read")
        async def get(self, request):
            raise AssertionError

        @public(elevated="events:trusted")
        async def post(self, request):
            raise AssertionError

    page(Pages(), "/x/{a:[0-9]+}", ServiceKeys({}), registry)(Declared)
    assert registry == {("GET", "/x/{a}"): Access("sessions:read"), ("POST", "/x/{a}"): Access(None, "events:trusted")}

    class Undeclared(View):
        async def get(self, request):
            raise AssertionError

    with pytest.raises(TypeError, match="GET /y: no @requires"):
        page(Pages(), "/y", ServiceKeys({}), registry)(Undeclared)
