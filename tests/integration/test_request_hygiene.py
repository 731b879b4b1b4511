"""Request hygiene on a real worker: CORS for the configured storefront origins only, Secure and
Domain cookie attributes, and rate limits per session and per address with 429 + Retry-After."""

from __future__ import annotations

import pytest

from tests.support.http import http_client
from tests.support.workers import module_worker

pytestmark = pytest.mark.integration

SHOP = "https://shop.example"
worker = module_worker(
    "hygiene",
    partitions=2,
    SESSIONS_CORS_ORIGINS=f"{SHOP},http://127.0.0.1:3000",
    SESSIONS_COOKIE_SECURE="true",
    SESSIONS_COOKIE_DOMAIN=".shop.example",
    # A session's bucket refills one token per 100 s: no request of a test comes back in time, so the
    # statuses of a burst are known exactly, in order.
    SESSIONS_RATE_LIMITS="session=0.01/s:3,address=1000/s:40",
)


@pytest.fixture
def browser(worker):
    with http_client(base_url=worker.url, timeout=15) as client:
        yield client


def test_a_preflight_from_a_storefront_origin_is_answered_and_others_are_refused(browser):
    asked = {"Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "content-type"}
    answer = browser.options("/api/sessions", headers={"Origin": SHOP, **asked})
    assert answer.status_code == 204
    assert answer.headers["Access-Control-Allow-Origin"] == SHOP
    assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    assert "PATCH" in answer.headers["Access-Control-Allow-Methods"]
    refused = browser.options("/api/sessions", headers={"Origin": "https://evil.example", **asked})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_responses_name_only_an_allowed_origin(browser):
    allowed = browser.get("/api/segments", headers={"Origin": SHOP})
    assert allowed.status_code == 200 and allowed.headers["Access-Control-Allow-Origin"] == SHOP
    other = browser.get("/api/segments", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    # Service routes are not for browsers: no CORS there.
    service = browser.get("/healthz", headers={"Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in service.headers


def test_cookies_are_secure_and_scoped_to_the_configured_domain(browser):
    answer = browser.post("/api/sessions", json={"public": {"a": {"value": "1"}}})
    assert answer.status_code == 201, answer.text
    cookies = answer.headers.get_list("set-cookie")
    assert len(cookies) == 2
    for cookie in cookies:
        attributes = [part.strip() for part in cookie.split(";")]
        assert "Secure" in attributes and "Domain=.shop.example" in attributes, cookie


def test_one_session_is_limited_and_told_when_to_come_back(worker, browser):
    created = browser.post("/api/sessions", json={})
    assert created.status_code == 201, created.text
    token = created.json()["sessionToken"]
    statuses, retry_after = [], []
    for _ in range(6):  # a burst of 3 (the creation is not counted: it had no session yet), then none for 100 s
        answer = browser.get("/api/sessions", params={"items": "*"}, cookies={"vtex_session": token})
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            retry_after.append(int(answer.headers["Retry-After"]))
            assert answer.json()["error"]["code"] == "rate_limited"
    assert statuses == [200, 200, 200, 429, 429, 429], statuses
    # The next token is 100 s away (less the moments the burst took): that is when to come back.
    assert all(90 <= seconds <= 100 for seconds in retry_after), retry_after
    # Another session from the same address is not held back by the first one's limit.
    other = browser.post("/api/sessions", json={})
    assert other.status_code == 201
    fresh = browser.get("/api/sessions", params={"items": "*"}, cookies={"vtex_session": other.json()["sessionToken"]})
    assert fresh.status_code == 200
    # A service with its key is not a storefront: no storefront limit.
    for _ in range(5):
        assert browser.get("/api/segments", headers=worker.service_headers).status_code == 200
