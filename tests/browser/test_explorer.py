"""The session explorer in headless Chromium against a real worker (one worker for the module).

A person enters the key, opens a session this test made, reads its namespaces, clicks the second
event of its timeline and sees the value as it was then, watches a new event arrive without a
reload, moves the time slider, and opens the operations view; a wrong key and an unknown id get a
clear message; axe-core finds no serious or critical violation; the page is usable at 1280x800 and
390x844. Waits are Playwright's: for a condition on the page, never for a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streams.devkit.events import campaign_click, cart_item_added, logged_in, new_session_id, page_view
from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.devkit.workers import SERVICE_HEADERS
from tests.support.http import http_client, http_get
from tests.support.sessions import public_has, wait_for_session
from tests.support.workers import module_worker

pytestmark = pytest.mark.browser

WAIT_MS = 20_000  # the longest a condition may take to show (the page polls every 2 s)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
STORY_EVENTS = 6

worker = module_worker("explorer", partitions=2, SESSIONS_RULES_FILE=str(SAMPLE_RULES_FILE))


@pytest.fixture(scope="module", autouse=True)
def _expect_timeout() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def story(worker: Any) -> str:
    """A visit: `public.color` goes red, then green (the second event), a campaign click, an item
    in the cart, a login (trusted), and blue last; one event a second."""
    sid = new_session_id()
    events = [
        page_view(sid, "https://shop.example/p?color=red&utm_source=google", seconds=0, pageType="product"),
        page_view(sid, "https://shop.example/p?color=green", seconds=1, pageType="product"),
        campaign_click(sid, seconds=2, utm_source="google", utm_medium="cpc", utm_campaign="blackfriday"),
        cart_item_added(sid, "sku-runner-2", 1, 349.9, seconds=3),
        logged_in(sid, "user-42", "someone@example.com", seconds=4),
        page_view(sid, "https://shop.example/p?color=blue", seconds=5, pageType="product"),
    ]
    with http_client(base_url=worker.url, timeout=15.0, headers=SERVICE_HEADERS) as client:
        assert client.post("/api/events", json=events).status_code == 202
        wait_for_session(client, sid, public_has("color", "blue"))
    return sid


def open_explorer(browser: Any, worker: Any, viewport: dict[str, int] = DESKTOP, bypass_csp: bool = False) -> Any:
    context = browser.new_context(viewport=viewport, bypass_csp=bypass_csp)
    page = context.new_page()
    page.goto(f"{worker.url}/")
    return page


@pytest.fixture
def pages(browser: Any) -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for page in opened:
        page.context.close()


def enter_key(page: Any, key: str) -> None:
    page.get_by_label("Service key").fill(key)
    page.get_by_role("button", name="Use key").click()


def open_session(page: Any, sid: str) -> None:
    page.get_by_label("Session id").fill(sid)
    page.get_by_role("button", name="Open").click()


def color_row(page: Any) -> Any:
    return page.locator('#namespaces tr[data-path="public.color"]')


def test_a_person_explores_a_session_its_past_and_its_live_events(browser, worker, story, pages, screenshots):
    from playwright.sync_api import expect

    page = open_explorer(browser, worker)
    pages.append(page)
    expect(page.locator("#status")).to_have_text("Enter a service key to begin.")
    enter_key(page, worker.service_key)
    expect(page.locator("#status")).to_have_text("Key accepted.")
    # The recent list (gathered from every worker) holds the session; pick it there.
    recent = page.locator(f'#recent button[data-session="{story}"]')
    expect(recent).to_be_visible()
    recent.click()

    # Now: the namespaces, who set each value, the segment.
    row = color_row(page)
    expect(row.locator("td.value")).to_have_text("blue")
    expect(row.locator("td.by")).to_contain_text("navigation.page_viewed")
    expect(page.locator("#segment")).to_contain_text("currencyCode")
    expect(page.locator("#segment")).to_contain_text("BRL")
    timeline = page.locator("#timeline button")
    expect(timeline).to_have_count(STORY_EVENTS)
    expect(timeline.nth(0)).to_contain_text("color=red")
    expect(timeline.nth(0)).to_contain_text("public.color")

    # The second event: the session right after it (?after=).
    timeline.nth(1).click()
    expect(row.locator("td.value")).to_have_text("green")
    expect(page.locator("#session-when")).to_contain_text("right after event navigation.page_viewed")
    expect(timeline.nth(1)).to_have_attribute("aria-current", "true")

    # The time slider (?at=): Home is the first event's instant.
    slider = page.get_by_label("State at a time in its lifetime")
    slider.focus()
    slider.press("Home")
    expect(row.locator("td.value")).to_have_text("red")
    expect(page.locator("#session-when")).to_contain_text("As it was at")

    # Live: a new event shows up in the timeline without a reload; "now" then shows its value.
    with http_client(base_url=worker.url, timeout=15.0) as client:
        event = page_view(story, "https://shop.example/p?color=purple", seconds=6)
        assert client.post("/api/events", json=event).status_code == 202
    expect(timeline).to_have_count(STORY_EVENTS + 1)
    expect(timeline.nth(STORY_EVENTS)).to_contain_text("color=purple")
    page.get_by_role("button", name="Back to now").click()
    expect(row.locator("td.value")).to_have_text("purple")
    expect(page.locator("#session-meta")).to_contain_text(f"{STORY_EVENTS + 1} events")
    expect(page.locator('#namespaces tr[data-path="rnb.campaigns"] td.by')).to_contain_text(
        "navigation.campaign_clicked"
    )
    page.screenshot(path=str(screenshots / "explorer-session.png"), full_page=True)

    # The operations view: the worker with its partitions, events folded per second, lag.
    page.get_by_role("button", name="Operations").click()
    expect(page.locator("#workers tbody")).to_contain_text("0, 1")
    expect(page.locator("#workers tbody")).to_contain_text("ready")
    expect(page.locator("#rate-summary")).to_contain_text("since the workers started")
    expect(page.locator("#lag tbody tr")).to_have_count(2)
    expect(page.locator("#dead-summary")).to_contain_text("set aside since the workers started")
    page.screenshot(path=str(screenshots / "explorer-operations.png"), full_page=True)


def test_a_wrong_key_gets_a_clear_message(browser, worker, pages):
    from playwright.sync_api import expect

    page = open_explorer(browser, worker)
    pages.append(page)
    enter_key(page, "not-a-key-" + uuid.uuid4().hex)
    expect(page.locator("#alert")).to_be_visible()
    expect(page.locator("#alert")).to_contain_text("The service key was refused")
    page.get_by_role("button", name="Operations").click()
    expect(page.locator("#alert")).to_contain_text("The service key was refused")


def test_an_unknown_session_is_no_such_session(browser, worker, pages):
    from playwright.sync_api import expect

    page = open_explorer(browser, worker)
    pages.append(page)
    enter_key(page, worker.service_key)
    expect(page.locator("#status")).to_have_text("Key accepted.")
    open_session(page, new_session_id())
    expect(page.locator("#alert")).to_have_text("No such session.")
    expect(page.locator("#session")).to_be_hidden()
    open_session(page, "not-an-id")
    expect(page.locator("#alert")).to_contain_text("No such session")


def test_a_key_kept_in_the_tab_is_used_and_can_be_forgotten(browser, worker, story, pages):
    from playwright.sync_api import expect

    page = open_explorer(browser, worker)
    pages.append(page)
    page.evaluate("key => sessionStorage.setItem('sessionExplorerKey', key)", "not-a-key-" + uuid.uuid4().hex)
    page.reload()
    expect(page.locator("#status")).to_have_text("Using the service key of this tab.")
    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#status")).to_have_text("Key forgotten.")
    open_session(page, story)
    expect(page.locator("#alert")).to_have_text("Enter a service key first.")


def test_usable_on_a_phone(browser, worker, story, pages, screenshots):
    from playwright.sync_api import expect

    page = open_explorer(browser, worker, viewport=PHONE)
    pages.append(page)
    enter_key(page, worker.service_key)
    expect(page.locator("#status")).to_have_text("Key accepted.")
    open_session(page, story)
    expect(color_row(page).locator("td.value")).to_be_visible()
    page.locator("#timeline button").nth(1).click()
    expect(color_row(page).locator("td.value")).to_have_text("green")
    # Nothing wider than the screen: tables scroll inside their own region, the page does not.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(screenshots / "explorer-phone.png"), full_page=False)


def axe_violations(page: Any, axe_script: str) -> list[dict[str, Any]]:
    page.add_script_tag(content=axe_script)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_axe_finds_no_serious_or_critical_violation(browser, worker, story, pages, axe_script, viewport):
    from playwright.sync_api import expect

    # bypass_csp: axe is injected as an inline script; the page's own policy forbids those.
    page = open_explorer(browser, worker, viewport=viewport, bypass_csp=True)
    pages.append(page)
    assert axe_violations(page, axe_script) == [], "the key prompt"
    enter_key(page, worker.service_key)
    open_session(page, story)
    expect(color_row(page).locator("td.value")).to_be_visible()
    expect(page.locator("#segment")).to_contain_text("currencyCode")
    assert axe_violations(page, axe_script) == [], "a session"
    page.get_by_role("button", name="Operations").click()
    expect(page.locator("#workers tbody")).to_contain_text("ready")
    assert axe_violations(page, axe_script) == [], "the operations view"


def test_the_page_loads_nothing_from_elsewhere(browser, worker, story, pages):
    # Every request the page makes goes to the worker; the policy says so too.
    from playwright.sync_api import expect

    page = open_explorer(browser, worker)
    pages.append(page)
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url))
    page.reload()
    enter_key(page, worker.service_key)
    open_session(page, story)
    expect(color_row(page).locator("td.value")).to_be_visible()
    assert seen and all(url.startswith(worker.url + "/") for url in seen), seen
    assert not any("Bearer" in url or worker.service_key in url for url in seen)
    policy = http_get(f"{worker.url}/").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def test_the_files_are_served_with_their_types(worker):
    for path, kind in (("/", "text/html"), ("/explorer/app.js", "text/javascript"), ("/explorer/app.css", "text/css")):
        answer = http_get(f"{worker.url}{path}")
        assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind), path
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    answer = http_get(f"{worker.url}/api/v1/sessions", headers=SERVICE_HEADERS)
    assert answer.status_code == 200 and "sessions" in answer.json()
