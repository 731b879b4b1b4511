"""Reading the rules file (TOML) at start-up; the parsing itself is pure, in projections/rules.py."""

from __future__ import annotations

import tomllib
from pathlib import Path

from projections.rules import EMPTY_RULES, Rules, RulesError, parse_rules


def load_rules(path: str) -> Rules:
    if not path:
        return EMPTY_RULES
    try:
        document = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path} is not valid TOML: {exc}") from None
    try:
        return parse_rules(document)
    except RulesError as exc:
        raise RulesError(f"{path}: {exc}") from None
