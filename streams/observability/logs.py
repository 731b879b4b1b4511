"""Log records as JSON lines (``SESSIONS_LOG_FORMAT=json``): one object per line with the time,
level, logger, message and, where the record carries them (``extra=``), the session id and the
event id. Secrets the worker knows (the signing key, service keys) are masked wherever they would
appear; nothing logs them on purpose."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

CONTEXT_FIELDS = ("session_id", "event_id")
MASK = "[redacted]"


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self.secrets = sorted({s for s in secrets if len(s) >= 8}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self._mask(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                entry[name] = str(value)
        if record.exc_info:
            entry["exception"] = self._mask(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = self._mask(record.exc_text)
        if record.stack_info:
            entry["stack"] = self._mask(self.formatStack(record.stack_info))
        return orjson.dumps(entry).decode()

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text


def use_json_lines(root: logging.Logger, secrets: Iterable[str] = ()) -> None:
    """Every handler of the root logger writes JSON lines; warnings go through logging too."""
    formatter = JsonFormatter(secrets)
    for handler in root.handlers:
        handler.setFormatter(formatter)
    logging.captureWarnings(True)
