"""The identity cookie: ``VtexIdclientAutCookie_<account>``, a token signed by the identity provider
(VTEX ID), verified with PyJWT against the issuer's public keys (a JWKS file).

VTEX's authentication-session fills ``authentication.*`` from this cookie on every session
request. Here a verified cookie on a storefront write becomes an ``auth.logged_in`` event (marked
``viaCookie``) appended with the write, and a write without a valid cookie after such a login an
``auth.logged_out``: the log records who was logged in, and replays never verify anything.

Claims read (VTEX ID's): ``sub`` (the e-mail), ``userId``, ``exp`` (required), ``audience``
(``admin`` for an administrator's token), ``account`` (when present, it must be the session's).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import jwt
import orjson

from streams.config.settings import SettingsError

COOKIE_PREFIX: Final = "VtexIdclientAutCookie_"
_EMAIL: Final = re.compile(r"^[^@\s]+@[^@\s]+$")
_MAX_TOKEN = 8192


class IdentityKeys:
    """The issuer's public keys, read once at start-up; ``issuer``: the ``iss`` tokens must carry
    (empty: any)."""

    def __init__(self, jwks_file: str, issuer: str = "") -> None:
        try:
            self._keys = jwt.PyJWKSet.from_dict(orjson.loads(Path(jwks_file).read_bytes()))
        except OSError as exc:
            raise SettingsError(f"SESSIONS_IDENTITY_JWKS_FILE: cannot read {jwks_file}: {exc.strerror}") from None
        except (orjson.JSONDecodeError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
            raise SettingsError(f"SESSIONS_IDENTITY_JWKS_FILE: {jwks_file} is not a usable JWKS: {exc}") from None
        self._issuer = issuer

    def login(self, token: str | None, account: str | None) -> dict[str, Any] | None:
        """The ``auth.logged_in`` data a valid token vouches for; None for no token, a bad
        signature, an unknown key, an expired token or one without a user."""
        if not token or len(token) > _MAX_TOKEN:
            return None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._keys[kid] if kid is not None else (self._keys.keys[0] if len(self._keys.keys) == 1 else None)
            if key is None:
                return None
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                options={"require": ["exp"], "verify_aud": False},
                issuer=self._issuer or None,
            )
        except (jwt.PyJWTError, KeyError):
            return None
        user_id, email = claims.get("userId"), claims.get("sub")
        if not isinstance(user_id, str) or not 1 <= len(user_id) <= 128:
            return None
        if not isinstance(email, str) or not _EMAIL.match(email) or len(email) > 254:
            return None
        if account is not None and claims.get("account") not in (None, account):
            return None  # another store's token
        data: dict[str, Any] = {"userId": user_id, "email": email, "viaCookie": True}
        if claims.get("audience") == "admin":
            data["admin"] = True
        return data
