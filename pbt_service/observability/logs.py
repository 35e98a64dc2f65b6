"""Log configuration of `pbt-service serve`: the classic text lines, or one JSON object a line.

JSON lines are for log collectors (Loki, Elasticsearch, CloudWatch): each record is one object with
`time` (ISO 8601, UTC), `level`, `logger`, `message`, the fields of the call being served
(`request_id`, `method`, `study`, `trial_id`, `peer`: see `context`) and, for an exception, its
traceback as the `exc_info` string, so a traceback never spreads over lines a collector would
read as separate records. The CLI calls `configure_logging(level, log_format)` once at start.

No token is ever logged: the interceptor reads only `x-request-id` from the metadata, and as a
second line of defence `Bearer ...` credentials in any message are masked in both formats.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import TextIO

from pbt_service.observability.context import current

__all__ = ["TEXT_FORMAT", "JsonFormatter", "RedactTokens", "configure_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;]+")


class RedactTokens(logging.Filter):
    """Masks `Bearer <token>` in a record's message: whatever some library logs, no credential
    reaches the log. Formats the message once, so the formatter does not do it again."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _BEARER.search(message):
            record.msg, record.args = _BEARER.sub(r"\1[redacted]", message), None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped by JSON)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = current()
        if fields is not None:
            entry.update(fields.as_dict())
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str, *, stream: TextIO | None = None) -> None:
    """Replaces the root logger's handlers with one writing to `stream` (stderr by default):
    `log_format` "text" (the classic `TEXT_FORMAT` lines) or "json" (`JsonFormatter`); `level` a
    logging level name such as "INFO". Raises ValueError for another format or level."""
    if log_format not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {log_format!r}")
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)  # not closed: it may write to a stream someone else owns
    root.addHandler(handler)
    root.setLevel(numeric)
