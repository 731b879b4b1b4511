"""Reading the rules file (TOML); the parsing itself is pure, in projections/rules.py."""

from __future__ import annotations

import tomllib
from pathlib import Path

from projections.rules import EMPTY_RULES, Rules, RulesError, parse_rules


def load_rules(path: str) -> Rules:
    return parse_rules_text(read_rules_file(path), path)


def read_rules_file(path: str) -> str:
    """The text of a rules file, checked (raises RulesError naming the file); "" for no file."""
    if not path:
        return ""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise RulesError(f"cannot read the rules file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RulesError(f"{path} is not UTF-8 text") from None
    parse_rules_text(text, path)
    return text


def parse_rules_text(text: str, where: str) -> Rules:
    """Rules from TOML text; ``where`` names its source in errors (a file, a table generation)."""
    if not text.strip():
        return EMPTY_RULES
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{where} is not valid TOML: {exc}") from None
    try:
        return parse_rules(document)
    except RulesError as exc:
        raise RulesError(f"{where}: {exc}") from None
