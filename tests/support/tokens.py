"""Forging tokens for the tests that check they are refused."""

from __future__ import annotations

import base64


def tampered(signature: str) -> str:
    """A JWT signature (base64url, no padding) with one bit of its first byte flipped. Editing its
    text instead (say, its last two characters) can leave the decoded bytes as they were: the last
    character of a 32-byte signature carries padding bits, and the text may already end that way."""
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
