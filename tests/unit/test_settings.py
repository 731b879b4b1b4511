from pathlib import Path

import pytest

from streams.config.settings import Settings, SettingsError

pytestmark = pytest.mark.unit


def test_defaults_match_the_documented_ones():
    s = Settings.from_env({})
    assert (s.kafka_bootstrap, s.web_host, s.web_port, s.data_dir, s.partitions) == (
        "127.0.0.1:9092",
        "127.0.0.1",
        8080,
        Path("./var"),
        12,
    )
    assert s.events_topic == "session-events"
    assert s.dlq_topic == "session-events.dlq"


def test_environment_overrides_are_typed():
    s = Settings.from_env(
        {"SESSIONS_WEB_PORT": "9000", "SESSIONS_DATA_DIR": "/tmp/x", "SESSIONS_PRODUCE_TIMEOUT_S": "2.5"}
    )
    assert s.web_port == 9000 and s.data_dir == Path("/tmp/x") and s.produce_timeout_s == 2.5


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings().web_port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SESSIONS_WEB_PORT": "eighty"}, "SESSIONS_WEB_PORT"),
        ({"SESSIONS_PARTITIONS": "0"}, "SESSIONS_PARTITIONS"),
        ({"SESSIONS_APP_ID": "has spaces"}, "SESSIONS_APP_ID"),
        ({"SESSIONS_WEB_PORT": "70000"}, "SESSIONS_WEB_PORT"),
    ],
)
def test_bad_values_name_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_host_accounts_map_hosts_to_accounts():
    s = Settings.from_env({"SESSIONS_HOST_ACCOUNTS": " Shop.Example=demo ; other.example:8443=second;"})
    assert s.host_account_map == {"shop.example": "demo", "other.example:8443": "second"}
    assert Settings.from_env({}).host_account_map == {}


@pytest.mark.parametrize("raw", ["shop.example", "=demo", "shop.example=", "a b=demo", "x=demo;X=other"])
def test_bad_host_accounts_name_the_variable_and_the_entry(raw):
    with pytest.raises(SettingsError, match=r"SESSIONS_HOST_ACCOUNTS entry \d"):
        Settings.from_env({"SESSIONS_HOST_ACCOUNTS": raw})


KEY = "k" * 20
SIGNING = "s" * 40


def test_secrets_do_not_show_in_repr():
    s = Settings.from_env({"SESSIONS_SERVICE_KEYS": f"{KEY}=sessions:read", "SESSIONS_SESSION_SIGNING_KEY": SIGNING})
    assert s.service_keys and s.session_signing_key
    text = repr(s) + str(s)
    assert KEY not in text and SIGNING not in text
    assert "service_keys" not in text and "session_signing_key" not in text
    assert "kafka_bootstrap='127.0.0.1:9092'" in text  # the rest still shows


def test_service_keys_are_parsed_by_settings():
    s = Settings.from_env(
        {"SESSIONS_SERVICE_KEYS": f" {KEY}=sessions:read events:trusted ; {'m' * 16}=sessions:erase;"}
    )
    assert s.service_key_scopes == {
        KEY: frozenset({"sessions:read", "events:trusted"}),
        "m" * 16: frozenset({"sessions:erase"}),
    }
    assert Settings.from_env({}).service_key_scopes == {}


@pytest.mark.parametrize("raw", ["short=sessions:read", f"{KEY}", f"{KEY}=", f"{KEY}=sessions:write"])
def test_bad_service_keys_name_the_entry_and_not_the_key(raw):
    with pytest.raises(SettingsError, match=r"SESSIONS_SERVICE_KEYS entry 0") as caught:
        Settings.from_env({"SESSIONS_SERVICE_KEYS": raw})
    assert KEY not in str(caught.value) and "short" not in str(caught.value)
