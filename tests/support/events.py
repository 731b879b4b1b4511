"""Builders for valid events in tests (JSON objects as an emitter would send them)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE_TIME = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def new_session_id() -> str:
    return str(uuid.uuid4())


def at(seconds: float) -> str:
    return (BASE_TIME + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def page_view(subject: str, url: str, seconds: float = 0, **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests",
        "type": "navigation.page_viewed",
        "subject": subject,
        "time": at(seconds),
        "data": {"url": url, **extra},
    }


def campaign_click(subject: str, seconds: float = 0, **utm: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests",
        "type": "navigation.campaign_clicked",
        "subject": subject,
        "time": at(seconds),
        "data": utm,
    }


def public_set(subject: str, values: dict[str, Any], seconds: float = 0) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests",
        "type": "session.public_set",
        "subject": subject,
        "time": at(seconds),
        "data": {"public": {k: {"value": v} for k, v in values.items()}},
    }


def logged_in(subject: str, user_id: str, email: str, seconds: float = 0, **profile: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests/identity",
        "type": "auth.logged_in",
        "subject": subject,
        "time": at(seconds),
        "data": {"userId": user_id, "email": email, **profile},
    }


def logged_out(subject: str, seconds: float = 0) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests/identity",
        "type": "auth.logged_out",
        "subject": subject,
        "time": at(seconds),
        "data": {},
    }


def session_created(subject: str, account: str | None = None, seconds: float = 0) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "/tests",
        "type": "session.created",
        "subject": subject,
        "time": at(seconds),
        "data": {"account": account} if account else {},
    }
