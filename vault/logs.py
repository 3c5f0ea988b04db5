"""Structured logs: one JSON object per line, with secrets kept out."""

from __future__ import annotations

import json
import logging
import re
import time

_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "user_id", "device_id")
# Defence in depth: anything shaped like a bearer token, JWT or password field is masked even if
# a message is careless.
_SECRET_RE = re.compile(
    r"(Bearer\s+)[A-Za-z0-9._~+/=-]+|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
    r"|(\"?(?:password|refreshToken|accessToken|pushToken)\"?\s*[:=]\s*\"?)[^\",\s]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        prefix = match.group(1) or match.group(2) or ""
        return f"{prefix}[redacted]"

    return _SECRET_RE.sub(mask, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for field in _FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)
