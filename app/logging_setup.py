"""Structured (JSON lines) logging that never writes passwords or tokens."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

_SECRET_KEYS = re.compile(r"pass(word)?|token|secret|authorization|cookie|csrf", re.IGNORECASE)
# A credential's name followed by ':' or '=' (as in "password=...", "token: ..."), or "Bearer <token>"; a word that
# merely contains one ("tokens/s", "passwords are hashed") is left alone.
_SECRET_INLINE = (
    re.compile(r"(?i)(\bbearer\s+)([^\s\"'&,}]+)"),
    re.compile(
        r"(?i)(\b(?:password|passwd|token|access_token|secret|authorization|api[_-]?key)\b[\"']?\s*[:=]\s*[\"']?)"
        r"([^\s\"'&,}]+)"
    ),
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def redact(value: Any, key: str = "") -> Any:
    """Replace anything that looks like a credential with '***'."""
    if key and _SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        for pattern in _SECRET_INLINE:
            value = pattern.sub(r"\1***", value)
        return value
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = redact(value, key)
        if record.exc_info:
            payload["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Install the JSON formatter on the root logger (idempotent)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # our middleware logs requests without query strings
