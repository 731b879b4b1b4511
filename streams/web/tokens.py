"""Session tokens: signed JWTs that only reference a session (its id), never carry its data.

HS256 with a key of ours: only this service issues and verifies them. An invalid, expired or
tampered token reads as "no session"; it never reveals which check failed.
"""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt

from schemas.events import SESSION_ID_PATTERN

_SESSION_ID = re.compile(SESSION_ID_PATTERN)
ALGORITHM = "HS256"


def signing_key(configured: str, data_dir: Path) -> str:
    """The configured key, else one generated once and kept (0600) under the data folder."""
    if configured:
        return configured
    path = data_dir / "session-signing.key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@dataclass(frozen=True)
class SessionTokens:
    key: str
    ttl_s: int

    def issue(self, session_id: str, version: int, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {
            "id": session_id,
            "version": version,
            "sub": "session",
            "iat": issued,
            "exp": issued + self.ttl_s,
            "jti": str(uuid.uuid4()),
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def session_id(self, token: str | None) -> str | None:
        """The id a valid token references, else None (missing, expired, tampered, malformed)."""
        if not token:
            return None
        try:
            claims = jwt.decode(
                token, self.key, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "id", "sub"]}
            )
        except jwt.PyJWTError:
            return None
        session_id = claims.get("id")
        if claims.get("sub") != "session" or not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            return None
        return session_id
