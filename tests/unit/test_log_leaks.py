"""The end-of-run scan of the spawned processes' logs (tests/conftest.py) finds what must never be logged."""

from __future__ import annotations

import jwt
import pytest

from tests.conftest import log_leaks

pytestmark = pytest.mark.unit


def test_the_scan_finds_emails_tokens_and_keys_and_nothing_else(tmp_path):
    token = jwt.encode({"id": "x", "exp": 2_000_000_000}, "k" * 32)
    (tmp_path / "clean.log").write_text("partition 3: 120 changelog records restored in 0.10s\nGET /api/sessions 200\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "mail.log").write_text("dead letter: $.data.email: joao@example.com is not allowed\n")
    (tmp_path / "a" / "token.log").write_text(f"cookie vtex_session={token}\n")
    (tmp_path / "a" / "key.log").write_text("Authorization: Bearer test-service-key-" + "ab" * 16 + "\n")
    found = log_leaks(sorted(tmp_path.rglob("*.log")))
    assert sorted(line.split(": ")[1] for line in found) == ["e-mail address", "service key", "session token"]
    assert not any("clean.log" in line for line in found)
