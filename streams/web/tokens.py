"""Session tokens: signed JWTs that only reference a session (its id), never carry its data.

HS256 with a key of ours, and only HS256: the algorithm is pinned on both sides (``alg: none``,
RS256/ES256 "confusion" and any other header are refused). Keys rotate: the newest key signs and
names itself in the header (``kid``, a digest prefix, never the key); every configured key
verifies, so a token signed with an older key stays valid until it expires, and one signed with
a key no longer configured is dead. The claims are the session id and token metadata only
(``sub``, ``iat``, ``exp``, ``jti``, the session version it was issued at). An invalid, expired
or tampered token reads as "no session"; it never reveals which check failed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

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


def signing_keys(configured: list[str], data_dir: Path) -> list[str]:
    """The configured keys (newest first), else the one generated under the data folder."""
    return list(configured) if configured else [signing_key("", data_dir)]


def key_id(key: str) -> str:
    """The ``kid`` of a key: a prefix of its SHA-256, which says nothing about the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class SessionTokens:
    def __init__(self, keys: str | list[str] | tuple[str, ...], ttl_s: int) -> None:
        self.keys = (keys,) if isinstance(keys, str) else tuple(keys)  # newest first; the first signs
        if not self.keys:
            raise ValueError("no signing key")
        self.ttl_s = ttl_s
        self._by_kid = {key_id(key): key for key in self.keys}

    def __repr__(self) -> str:  # the keys are secrets
        return f"SessionTokens(keys=<{len(self.keys)}>, ttl_s={self.ttl_s})"

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
        key = self.keys[0]
        return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})

    def proof(self, message: str) -> str:
        """An HMAC of ``message`` under the newest key: proves a worker of this deployment wrote it."""
        return hmac.new(self.keys[0].encode(), message.encode(), hashlib.sha256).hexdigest()

    def proves(self, message: str, proof: str) -> bool:
        """``proof`` is :meth:`proof` of ``message`` under one of the keys (rotation), in constant time."""
        if not proof.isascii():  # a client's header (compare_digest refuses non-ASCII text): no proof
            return False
        found = False
        for key in self.keys:
            expected = hmac.new(key.encode(), message.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()
            found |= hmac.compare_digest(expected, proof)
        return found

    def session_id(self, token: str | None) -> str | None:
        """The id a valid token references, else None (missing, expired, tampered, malformed)."""
        if not token or not token.isascii():  # a JWT is ASCII; other header bytes are no token
            return None
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        if header.get("alg") != ALGORITHM:
            return None
        kid = header.get("kid")
        if kid is None:
            candidates = list(self.keys)  # issued before tokens named their key
        elif isinstance(kid, str) and kid in self._by_kid:
            candidates = [self._by_kid[kid]]
        else:
            return None  # a key no longer configured (rotated out), or never ours
        claims: dict[str, Any] | None = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token, key, algorithms=[ALGORITHM], options={"require": ["exp", "iat", "id", "sub"]}
                )
                break
            except jwt.PyJWTError:
                continue
        if claims is None:
            return None
        session_id = claims.get("id")
        if claims.get("sub") != "session" or not isinstance(session_id, str) or not _SESSION_ID.match(session_id):
            return None
        return session_id
