"""The identity cookie (VtexIdclientAutCookie_<account>) verified against a JWKS file: what a token
vouches for, and every token that vouches for nothing. No broker, no worker."""

from __future__ import annotations

import time

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from projections.session import fold
from schemas.events import event_from_object
from streams.config.settings import SettingsError
from streams.devkit.events import logged_in, new_session_id, session_created
from streams.devkit.paths import sample_rules
from streams.web.identity import IdentityKeys

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def issuer():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def keys(issuer, tmp_path):
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(issuer.public_key(), as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps({"keys": [{**jwk, "kid": "vtexid-1", "alg": "RS256", "use": "sig"}]}))
    return IdentityKeys(str(path))


def token(key, kid="vtexid-1", **claims) -> str:
    body = {"sub": "joao@example.com", "userId": "u-42", "account": "demo", "exp": int(time.time()) + 600, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": kid})


def test_a_valid_token_vouches_for_its_user(keys, issuer):
    assert keys.login(token(issuer), "demo") == {"userId": "u-42", "email": "joao@example.com", "viaCookie": True}
    admin = keys.login(token(issuer, audience="admin"), "demo")
    assert admin == {"userId": "u-42", "email": "joao@example.com", "viaCookie": True, "admin": True}


def test_tokens_that_vouch_for_nothing(keys, issuer):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in [
        None,
        "",
        "not-a-jwt",
        token(stranger),  # another issuer's key
        token(issuer, kid="unknown"),
        token(issuer, exp=int(time.time()) - 10),  # expired
        token(issuer, exp=None),  # no expiry
        token(issuer, userId=None),
        token(issuer, sub="not an email"),
        token(issuer, account="other-store"),
        jwt.encode({"sub": "a@b.co", "userId": "u", "exp": int(time.time()) + 60}, "x" * 32, algorithm="HS256"),
        "x" * 10_000,
    ]:
        assert keys.login(bad, "demo") is None, bad


def test_an_unreadable_jwks_file_stops_the_start_naming_the_setting(tmp_path):
    with pytest.raises(SettingsError, match="SESSIONS_IDENTITY_JWKS_FILE: cannot read"):
        IdentityKeys(str(tmp_path / "missing.json"))
    broken = tmp_path / "broken.json"
    broken.write_text('{"keys": "nope"}')
    with pytest.raises(SettingsError, match="is not a usable JWKS"):
        IdentityKeys(str(broken))


def test_an_admin_login_fills_the_admin_fields():
    sid = new_session_id()
    state = fold(
        [event_from_object(e) for e in (session_created(sid), logged_in(sid, "u-1", "ana@example.com", 1, admin=True))],
        rules=sample_rules(),
    )
    assert {k: v["value"] for k, v in state.namespaces["authentication"].items()} == {
        "storeUserId": "u-1",
        "storeUserEmail": "ana@example.com",
        "adminUserId": "u-1",
        "adminUserEmail": "ana@example.com",
    }
