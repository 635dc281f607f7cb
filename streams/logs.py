"""Structured logs: one JSON object per line, message text left out unless asked for.

banter's own log calls never carry a message's text (``tests/unit/streams/test_no_text_logged.py``),
but an exception's message might quote one; unless ``BANTER_LOG_TEXT`` is on, a logged exception
keeps its traceback and type and drops its message.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields}`` on one line."""

    def __init__(self, with_text: bool = False) -> None:
        super().__init__()
        self.with_text = with_text

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        data |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info) if self.with_text else _without_messages(record)
        return orjson.dumps(data, default=str).decode()


def _without_messages(record: logging.LogRecord) -> str:
    """The traceback of each exception in the chain, with its type but not its message."""
    assert record.exc_info is not None and record.exc_info[0] is not None
    parts: list[str] = []
    seen: traceback.TracebackException | None = traceback.TracebackException(*record.exc_info)
    while seen is not None:
        name = getattr(seen.exc_type, "__qualname__", "Exception")
        parts.insert(0, "".join(seen.stack.format()) + f"{name} (message withheld: BANTER_LOG_TEXT is off)")
        seen = seen.__cause__ or seen.__context__
    return "Traceback (most recent call last):\n" + "\n...\n".join(parts)


def logging_config(level: str, with_text: bool = False) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker; ``with_text`` keeps exceptions' messages."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "with_text": with_text}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {"aiokafka": {"level": "WARNING"}, "faust": {"level": level.upper()}},
    }
