"""The sample rules file, parsed: the rules `make run` uses and the tests assert against."""

from __future__ import annotations

import tomllib
from pathlib import Path

from projections.rules import Rules, parse_rules

SAMPLE_RULES_FILE = Path(__file__).resolve().parents[2] / "ops" / "rules.sample.toml"


def sample_rules() -> Rules:
    return parse_rules(tomllib.loads(SAMPLE_RULES_FILE.read_text()))
