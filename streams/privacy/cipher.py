"""AES-GCM for personal values and for wrapping data keys under the master key.

A sealed value is ``enc:v1:<kid>:<base64url(nonce || ciphertext || tag)>`` where ``kid`` names the
session's data key; the session id and the value's path are the associated data, so a value
copied into another field or another session does not open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from schemas.personal import SEALED_PREFIX

NONCE_BYTES = 12
KEY_BYTES = 32


class MasterKeyError(ValueError):
    """A bad ``SESSIONS_MASTER_KEY``: the message says what is wrong, never the key."""


@dataclass(frozen=True)
class DataKey:
    kid: str
    aead: AESGCM = field(repr=False)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _aad(session_id: str, path: str) -> bytes:
    return f"{session_id}|{path}".encode()


def seal(key: DataKey, session_id: str, path: str, value: Any) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = key.aead.encrypt(nonce, orjson.dumps(value), _aad(session_id, path))
    return f"{SEALED_PREFIX}{key.kid}:{_b64(nonce + sealed)}"


def kid_of(text: str) -> str | None:
    """The data key a sealed value names (None: not a sealed value)."""
    if not text.startswith(SEALED_PREFIX):
        return None
    kid, sep, _ = text[len(SEALED_PREFIX) :].partition(":")
    return kid if sep else None


class Unreadable(ValueError):
    """A sealed value that does not open with its key: tampered, moved, or not ours."""


def open_sealed(aead: AESGCM, session_id: str, path: str, text: str) -> Any:
    blob = text[len(SEALED_PREFIX) :].partition(":")[2]
    try:
        raw = _unb64(blob)
        return orjson.loads(aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(session_id, path)))
    except (InvalidTag, ValueError, orjson.JSONDecodeError):
        raise Unreadable(path) from None


class MasterKeys:
    """``SESSIONS_MASTER_KEY``: base64 keys of 32 bytes, newest first (comma-separated). The first
    wraps new data keys; every one unwraps the data keys wrapped under it (rotation)."""

    def __init__(self, text: str) -> None:
        keys = []
        for index, part in enumerate(p for p in re.split(r"[\s,]+", text) if p):
            try:
                raw = base64.b64decode(part + "=" * (-len(part) % 4), altchars=b"-_", validate=True)
            except ValueError:
                raise MasterKeyError(f"master key {index + 1} is not base64") from None
            if len(raw) != KEY_BYTES:
                raise MasterKeyError(f"master key {index + 1} has {len(raw)} bytes; it needs {KEY_BYTES}")
            keys.append(raw)
        if not keys:
            raise MasterKeyError("no master key")
        self._keys = {hashlib.sha256(raw).hexdigest()[:16]: raw for raw in keys}
        self._newest = next(iter(self._keys))
        # The people index is keyed by an HMAC under a key derived from each master key.
        self._index_keys = [hmac.digest(raw, b"sessions people index", "sha256") for raw in keys]

    def __repr__(self) -> str:  # secrets
        return f"MasterKeys(<{len(self._keys)}>)"

    @staticmethod
    def generate() -> str:
        return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode()

    def wrap(self, session_id: str, key: DataKey, raw_key: bytes) -> bytes:
        """A data key record: the key wrapped with the newest master key, which it names."""
        return self._wrap(session_id, key.kid, raw_key)

    def _wrap(self, session_id: str, kid: str, raw_key: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        wrapped = AESGCM(self._keys[self._newest]).encrypt(nonce, raw_key, f"dek|{session_id}|{kid}".encode())
        return orjson.dumps({"master": self._newest, "wrapped": _b64(nonce + wrapped)})

    def unwrap(self, session_id: str, kid: str, value: bytes) -> DataKey:
        """Raises :class:`Unreadable` when no configured master key opens it."""
        return DataKey(kid, AESGCM(self._unwrap_raw(session_id, kid, value)[1]))

    def rewrap(self, session_id: str, kid: str, value: bytes) -> bytes | None:
        """The data key record wrapped with the newest master key; None when it already is.
        Raises :class:`Unreadable` when no configured master key opens it."""
        master, raw = self._unwrap_raw(session_id, kid, value)
        return None if master == self._newest else self._wrap(session_id, kid, raw)

    def _unwrap_raw(self, session_id: str, kid: str, value: bytes) -> tuple[str, bytes]:
        try:
            record = orjson.loads(value)
            master = self._keys[record["master"]]
            raw = _unb64(record["wrapped"])
            plain = AESGCM(master).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"dek|{session_id}|{kid}".encode())
        except (KeyError, TypeError, ValueError, InvalidTag, orjson.JSONDecodeError):
            raise Unreadable(f"data key {kid}") from None
        return record["master"], plain

    def digests(self, kind: str, value: str) -> list[str]:
        """The people index's keys of one identifier (one per master key, the newest first)."""
        message = f"{kind}:{value}".encode()
        return [hmac.digest(key, message, "sha256").hex()[:32] for key in self._index_keys]


def master_keys(configured: str, data_dir: Path) -> MasterKeys:
    """The configured master keys, else one generated once and kept (0600) under the data folder."""
    if configured:
        return MasterKeys(configured)
    path = data_dir / "master.key"
    try:
        return MasterKeys(path.read_text().strip())
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: a process of the same folder never reads half a key.
    spare = path.with_name(f".master.key.{os.getpid()}")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(MasterKeys.generate())
    try:
        os.link(spare, path)
    except FileExistsError:  # another process of the same folder won the race: its key it is
        pass
    finally:
        spare.unlink()
    return MasterKeys(path.read_text().strip())


def new_data_key() -> tuple[DataKey, bytes]:
    raw = AESGCM.generate_key(bit_length=256)
    return DataKey(os.urandom(8).hex(), AESGCM(raw)), raw
