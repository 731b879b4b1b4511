"""Table generations, the pure parts: names, the control record codec, and ``sessionctl rebuild``'s
argument checks (a bad option stops it before anything touches Kafka: exit code 2, no topic)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from projections.rules import EMPTY_RULES, RulesError
from streams.config.rules_file import parse_rules_text, read_rules_file
from streams.config.settings import Settings
from streams.config.topics import changelog_topic, control_topic
from streams.control.app import fold_config
from streams.control.generations import (
    Generation,
    GenerationRecordError,
    decode_generation,
    encode_generation,
    scratch_dir,
    stores_dir,
)
from streams.devkit.paths import SAMPLE_RULES_FILE
from streams.tools.sessionctl import cli

pytestmark = pytest.mark.unit

# Nothing listens here: a command that tried to reach Kafka would fail with exit code 3, not 2.
UNREACHABLE = {"SESSIONS_KAFKA_BOOTSTRAP": "127.0.0.1:1"}


def test_generation_one_keeps_todays_names_and_later_ones_get_their_own():
    assert changelog_topic("app-sessions-state-changelog", 1) == "app-sessions-state-changelog"
    assert changelog_topic("app-sessions-state-changelog", 2) == "app-sessions-state-changelog-g2"
    assert stores_dir(Path("var/store"), 1) == Path("var/store")
    assert stores_dir(Path("var/store"), 3) == Path("var/store/g3")
    assert scratch_dir(Path("var"), 2) == Path("var/rebuild-g2")
    assert control_topic("session-engine") == "session-engine-generations"


def test_the_worker_fold_config_follows_the_generation(tmp_path):
    settings = Settings(data_dir=tmp_path, app_id="shop")
    assert fold_config(settings).changelog_topic == "shop-sessions-state-changelog"
    assert fold_config(settings).stores_dir == tmp_path / "store"
    assert fold_config(settings, 2).changelog_topic == "shop-sessions-state-changelog-g2"
    assert fold_config(settings, 2).stores_dir == tmp_path / "store" / "g2"


def test_the_control_record_round_trips():
    record = Generation(4, SAMPLE_RULES_FILE.read_text(), "2026-11-27T06:00:00Z")
    assert decode_generation(encode_generation(record)) == record
    assert orjson.loads(encode_generation(record))["generation"] == 4
    assert decode_generation(b'{"generation": 2}') == Generation(2, "", "")


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[2]", b"{}", b'{"generation": 0}', b'{"generation": "2"}', b'{"generation": true}',
     b'{"generation": 2, "rules": 5}'],
)  # fmt: skip
def test_a_bad_control_record_is_refused_with_a_reason(raw):
    with pytest.raises(GenerationRecordError):
        decode_generation(raw)


def test_the_rules_of_a_generation_are_parsed_like_a_rules_file():
    assert Generation(2, "").parsed_rules() == EMPTY_RULES
    assert Generation(2, SAMPLE_RULES_FILE.read_text()).parsed_rules().default_account == "demo"
    with pytest.raises(RulesError, match="not valid TOML"):
        parse_rules_text("[[[", "x")
    with pytest.raises(RulesError, match="generation 3"):
        Generation(3, 'unknown_key = "x"').parsed_rules()


def test_reading_a_rules_file_names_the_problem(tmp_path):
    assert read_rules_file("") == ""
    assert read_rules_file(str(SAMPLE_RULES_FILE)) == SAMPLE_RULES_FILE.read_text()
    with pytest.raises(RulesError, match="cannot read"):
        read_rules_file(str(tmp_path / "missing.toml"))


def _rebuild(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["rebuild", *args], env=UNREACHABLE)
    return result.exit_code, result.output


def test_rebuild_refuses_a_rules_file_that_does_not_exist(tmp_path):
    code, output = _rebuild("--rules", str(tmp_path / "nope.toml"))
    assert code == 2
    assert "--rules" in output and "cannot read the rules file" in output


def test_rebuild_refuses_a_rules_file_that_is_not_toml_or_not_rules(tmp_path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[[[")
    code, output = _rebuild("--rules", str(bad_toml))
    assert code == 2 and "not valid TOML" in output
    bad_rules = tmp_path / "bad-rules.toml"
    bad_rules.write_text('colour = "blue"\n')
    code, output = _rebuild("--rules", str(bad_rules))
    assert code == 2 and "bad-rules.toml" in output


@pytest.mark.parametrize("args", [("--generation", "1"), ("--generation", "0"), ("--max-lag", "-1")])
def test_rebuild_refuses_bad_numbers(args):
    code, output = _rebuild(*args)
    assert code == 2
    assert args[0] in output
