"""Session apps: the manifest (VTEX's configuration.json plus a URL), when an app is due, and the
fold of its recorded answer (``session.transformed``). No broker, no HTTP."""

from __future__ import annotations

import orjson
import pytest

from projections.session import fold
from schemas.events import event_from_object
from schemas.personal import is_personal_state, public_keys
from streams.config.settings import SettingsError
from streams.devkit.events import logged_in, new_session_id, public_set, session_created, session_transformed
from streams.devkit.paths import sample_rules
from streams.devkit.session_app import CONFIGURATION, NAME
from streams.privacy.cipher import new_data_key
from streams.privacy.sealing import open_json, seal_event, seal_state
from streams.web.session_apps import NOTHING_ASKED, digest, due, inputs_of, parse_manifest

pytestmark = pytest.mark.unit

RULES = sample_rules()
MANIFEST = {NAME: {"url": "http://127.0.0.1:9", **CONFIGURATION}}


def run(*objects):
    return fold((event_from_object(o) for o in objects), rules=RULES)


def test_the_storefront_permissions_configuration_is_a_valid_manifest():
    [app] = parse_manifest(MANIFEST, "apps.json")
    assert app.transform_url == "http://127.0.0.1:9/_v/storefront-permissions/session/transform"
    assert ("authentication", "storeUserEmail") in app.inputs
    assert app.outputs >= {("public", "sc"), ("public", "facets"), (NAME, "organization")}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ([], "expected a JSON object of apps"),
        ({"Bad Name": {"url": "http://x"}}, "an app name has"),
        ({"a": {"url": "ftp://x"}}, "a.url: expected an http(s):// URL"),
        ({"a": {"url": "http://x", "outputs": {}}}, "a.outputs: unknown key"),
        ({"a": {"url": "http://x", "output": {"store": ["channel"]}}}, "a.output.store: a namespace the engine writes"),
        ({"a": {"url": "http://x", "output": {"profile": ["email"]}}}, "a.output.profile"),
        ({"a": {"url": "http://x", "input": {"public": "sc"}}}, "a.input.public: expected a list"),
    ],
)
def test_a_bad_manifest_names_the_entry(manifest, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_manifest(manifest, "apps.json")


def test_apps_run_in_dependency_order():
    manifest = {
        "reads-org": {"url": "http://x", "input": {"b2b": ["organization"]}, "output": {"loyalty": ["tier"]}},
        "writes-org": {"url": "http://x", "input": {"public": ["email"]}, "output": {"b2b": ["organization"]}},
    }
    assert [app.name for app in parse_manifest(manifest, "m")] == ["writes-org", "reads-org"]


def test_an_app_is_due_when_its_inputs_differ_from_those_it_last_answered_for():
    [app] = parse_manifest(MANIFEST, "apps.json")
    sid = new_session_id()
    fresh = run(session_created(sid))
    assert inputs_of(app, fresh) == {} and due(app, fresh) is None  # never called for nothing
    logged = run(session_created(sid), logged_in(sid, "u-9", "buyer@example.com", 1))
    body = {"authentication": {"storeUserEmail": {"value": "buyer@example.com"}}}
    assert inputs_of(app, logged) == body
    asked = due(app, logged)
    assert asked == digest(body) != NOTHING_ASKED
    answered = run(
        session_created(sid),
        logged_in(sid, "u-9", "buyer@example.com", 1),
        session_transformed(sid, NAME, asked, {"public": {"sc": "2"}, NAME: {"organization": "org-acme"}}, 2),
    )
    assert due(app, answered) is None
    assert answered.facts["apps"] == {NAME: asked}


def test_the_recorded_answer_folds_as_vtex_merges_it_and_wakes_the_transformers():
    sid = new_session_id()
    state = run(
        session_created(sid),
        public_set(sid, {"facets": "old=1;"}),
        session_transformed(
            sid,
            NAME,
            "a" * 64,
            {"public": {"sc": "2", "facets": "productClusterIds=138;"}, NAME: {"organization": "o"}},
            1,
        ),
    )
    assert state.namespaces[NAME] == {"organization": {"value": "o"}}
    assert state.namespaces["store"]["currencyCode"] == {"value": "USD"}  # public.sc woke the store transformer
    assert state.namespaces["search"]["facets"] == {"value": "productClusterIds=138;"}
    # "" clears, a key left out stays.
    cleared = run(
        session_created(sid),
        session_transformed(sid, NAME, "a" * 64, {NAME: {"organization": "o", "costcenter": "c"}}, 1),
        session_transformed(sid, NAME, "b" * 64, {NAME: {"organization": ""}}, 2),
    )
    assert cleared.namespaces[NAME] == {"costcenter": {"value": "c"}}


def test_personal_values_an_app_answers_are_sealed_in_the_log_and_in_the_state():
    personal = public_keys(frozenset())
    sid = new_session_id()
    record = session_transformed(
        sid,
        NAME,
        "a" * 64,
        {NAME: {"storeUserEmail": "buyer@example.com", "organization": "org-acme", "userId": ""},
         "public": {"storeUserEmail": "buyer@example.com", "sc": "2"}},
    )  # fmt: skip
    key, _ = new_data_key()
    sealed = orjson.loads(orjson.dumps(record))
    assert seal_event(sealed, key, personal)
    raw = orjson.dumps(sealed)
    assert b"buyer@example.com" not in raw and b"org-acme" in raw and b'"sc":{"value":"2"}' in raw
    assert sealed["data"]["outputs"][NAME]["userId"] == {"value": ""}  # a clear stays readable
    assert orjson.loads(open_json(raw, lambda session, kid: key.aead if kid == key.kid else None)) == record
    state = run(session_created(sid), record)
    assert is_personal_state(state.namespaces, state.facts, personal)
    stored = seal_state(state, key, personal)
    assert b"buyer@example.com" not in stored and b"org-acme" in stored
