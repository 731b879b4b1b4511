"""Request hygiene's pure parts: the settings' parsers, token buckets, the client address behind
proxies, and the proof a forwarded request carries."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from streams.config.settings import Settings, SettingsError
from streams.config.values import Limit
from streams.web.hygiene import Buckets, client_address
from streams.web.tokens import SessionTokens

pytestmark = pytest.mark.unit


def test_rate_limits_and_origins_parse_and_bad_ones_are_named():
    settings = Settings.from_env(
        {
            "SESSIONS_RATE_LIMITS": "address=20/s:40, session=2.5/s",
            "SESSIONS_CORS_ORIGINS": "https://shop.example,http://127.0.0.1:3000",
        }
    )
    assert settings.rate_limit_pair == (Limit(20, 40), Limit(2.5, 5))
    assert settings.cors_origin_set == {"https://shop.example", "http://127.0.0.1:3000"}
    for name, bad in [
        ("SESSIONS_RATE_LIMITS", "ip=20/s"),
        ("SESSIONS_RATE_LIMITS", "address=0/s"),
        ("SESSIONS_RATE_LIMITS", "address=20"),
        ("SESSIONS_CORS_ORIGINS", "https://shop.example/path"),
        ("SESSIONS_CORS_ORIGINS", "*"),
        ("SESSIONS_COOKIE_DOMAIN", "shop.example; Secure"),
        ("SESSIONS_TRUSTED_PROXY_HOPS", "-1"),
    ]:
        with pytest.raises(SettingsError, match=name.removeprefix("SESSIONS_")):
            Settings.from_env({name: bad})


def test_a_bucket_lets_a_burst_through_then_the_rate():
    buckets = Buckets(Limit(rate=2, burst=3))
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert buckets.take("b", 0.0) == 0  # another key, its own bucket
    assert buckets.take("a", 1.0) == 0  # refilled by 2 tokens in a second (one spent by the refusal's wait)


def test_buckets_forget_the_least_recently_used_keys():
    buckets = Buckets(Limit(1, 1), max_keys=2)
    for key in ("a", "b", "c"):
        buckets.take(key, 0.0)
    assert buckets.take("a", 0.0) == 0  # "a" was forgotten: a full bucket again
    assert buckets.take("c", 0.0) == 1.0


def test_the_client_address_behind_trusted_proxies_is_the_one_they_saw():
    request = make_mocked_request("GET", "/", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.0.0.2"})
    assert client_address(request, 1) == "10.0.0.2"
    assert client_address(request, 2) == "203.0.113.7"  # the client may write what it likes to the left
    assert client_address(make_mocked_request("GET", "/"), 1) == client_address(make_mocked_request("GET", "/"), 0)


def test_a_forwarded_requests_proof_is_verified_with_every_key():
    old, new = "o" * 32, "n" * 32
    sender, receiver = SessionTokens([new, old], 60), SessionTokens([new, old], 60)
    proof = sender.proof("GET /api/sessions")
    assert receiver.proves("GET /api/sessions", proof)
    assert not receiver.proves("PATCH /api/sessions", proof)
    assert not receiver.proves("GET /api/sessions", "1")
    assert SessionTokens([old], 60).proves("GET /x", SessionTokens([old, new], 60).proof("GET /x"))
    assert not SessionTokens(["x" * 32], 60).proves("GET /x", proof)
