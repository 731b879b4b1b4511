"""Places in the checkout the tests and the bench use (the project is installed editable)."""

from __future__ import annotations

from pathlib import Path

from projections.rules import Rules
from streams.config.rules_file import load_rules

REPO = Path(__file__).resolve().parents[2]
SAMPLE_RULES_FILE = REPO / "ops" / "rules.sample.toml"


def sample_rules() -> Rules:
    """The sample rules file (the rules ``make run`` uses), loaded as the worker loads it."""
    return load_rules(str(SAMPLE_RULES_FILE))
