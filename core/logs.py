"""Structured JSON logs with an id that follows a message from webhook to reply, and no personal data.

Every log line is one JSON object: time (UTC), level, logger, event text, and the context ids
bound for the current request or job (`request_id`, `message_id`, `ticket`). Phone numbers,
NIK and e-mail addresses are redacted from every line, whatever the caller wrote.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from datetime import datetime, timezone
from typing import Any

_CONTEXT: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("aduan_log_context", default={})
_PII = [
    (re.compile(r"(?<!\d)(?:\+?62|0)8\d{7,12}(?!\d)"), "[telepon]"),
    (re.compile(r"(?<!\d)\d{16}(?!\d)"), "[nik]"),
    (re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+"), "[email]"),
]


def redact(text: str) -> str:
    for pattern, repl in _PII:
        text = pattern.sub(repl, text)
    return text


def bind(**ids: Any) -> contextvars.Token:
    """Attach ids (request_id, message_id, ticket) to every log line of this request or job."""
    return _CONTEXT.set({**_CONTEXT.get(), **{k: v for k, v in ids.items() if v is not None}})


def unbind(token: contextvars.Token) -> None:
    _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "event": redact(record.getMessage()),
            **_CONTEXT.get(),
        }
        for key in ("message_id", "ticket", "channel", "request_id"):
            if hasattr(record, key):
                line[key] = getattr(record, key)
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: str | None = None) -> None:
    """JSON lines on stderr (ADUAN_LOG_LEVEL, default INFO); call once per process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("ADUAN_LOG_LEVEL", "INFO")).upper())
    for noisy in ("httpx", "httpcore", "rq.worker", "uvicorn.access", "telegram", "tweepy", "twilio", "urllib3",
                  "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
