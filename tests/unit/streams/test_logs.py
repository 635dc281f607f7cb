"""A logged exception keeps its traceback and type; its message, which might quote a user's text,
only with BANTER_LOG_TEXT on."""

from __future__ import annotations

import logging

import orjson

from streams.logs import JsonFormatter


def _logged(formatter: JsonFormatter) -> dict[str, str]:
    text = "".join(["call me at my ", "sec", "ret number"])  # a user's text, as it arrives at run time
    try:
        try:
            raise KeyError(text)
        except KeyError as inner:
            raise ValueError(f"the user said: {text}") from inner
    except ValueError:
        record = logging.LogRecord("banter", logging.ERROR, __file__, 1, "handling failed", (), None)
        import sys

        record.exc_info = sys.exc_info()
    return orjson.loads(formatter.format(record))


def test_an_exception_is_logged_without_its_message_by_default() -> None:
    logged = _logged(JsonFormatter())
    assert "secret" not in logged["exc"]  # the source lines show the code, not the values
    assert "ValueError" in logged["exc"] and "KeyError" in logged["exc"] and "_logged" in logged["exc"]


def test_with_text_on_the_message_is_kept() -> None:
    assert "my secret number" in _logged(JsonFormatter(with_text=True))["exc"]
