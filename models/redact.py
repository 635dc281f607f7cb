"""Redaction of personal data in text that leaves the conversation: e-mail addresses and phone numbers.

``redact`` is what the analytics events apply to every candidate text; replies to
users are never redacted. It prefers redacting a number that only looks like a
phone number over keeping one that is: digits joined by spaces, dots, dashes or
brackets, 7 or more (8 or more after ``+`` or ``00``; 10 or more with no separator),
become ``[phone]``, except dates (2026-11-30, 30/11/2026), year ranges
(1990-2024), decimals (3.14159265) and thousands (1 000 000, 1.000.000).
Ages, times and short counts ("I'm 25", "at 10:30", "route 66") are left alone.
"""

from __future__ import annotations

import re
from typing import overload

EMAIL = "[email]"
PHONE = "[phone]"

_EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
# Dates and year ranges are never phone numbers; they are matched first, and kept.
_DATE = (
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"  # 2026-11-30
    r"|\d{1,2}[-/.]\d{1,2}[-/.](?:\d{4}|\d{2})"  # 30/11/2026, 11.30.26
    r"|(?:1[89]|20)\d\d ?[-–/] ?(?:1[89]|20)\d\d)"  # 1990-2024
)
# Otherwise a run of digits joined by up to three separators (spaces, dots, dashes, slashes,
# brackets), not glued to a word or another number, is a phone number if _is_phone says so.
_RUN = r"(?:\+|\(\+?)?\d(?:[ \u00a0.\-/()]{0,3}\d)*(?!\w)"
_NUMBERS = re.compile(rf"(?<![\w+.,/-])(?:(?P<date>{_DATE})(?![\d]|[-/.]\d)|(?P<run>{_RUN}))")
_NOT_PHONES = (
    re.compile(r"\d+\.\d+"),  # 3.14159265
    re.compile(r"[1-9](?:[ \u00a0]\d{3})+|\d{1,3}(?:\.\d{3})+"),  # 1 000 000, 1.000.000
)
_PHONE_DIGITS = range(7, 16)  # E.164 allows 15; a local number has 7 or more
_INTERNATIONAL_DIGITS = range(8, 16)


@overload
def redact(text: str) -> str: ...
@overload
def redact(text: None) -> None: ...
def redact(text: str | None) -> str | None:
    """``text`` with each e-mail address replaced by ``[email]`` and each phone number by ``[phone]``."""
    if not text:
        return text
    return _NUMBERS.sub(_phone_or_kept, _EMAIL.sub(EMAIL, text))


def _phone_or_kept(match: re.Match[str]) -> str:
    run = match.group("run")
    return PHONE if run is not None and _is_phone(run) else match.group()


def _is_phone(run: str) -> bool:
    digits = sum(char.isdigit() for char in run)
    bare = run.strip("()")
    if bare.startswith("+") or (bare.startswith("00") and not bare.isdigit()):
        return digits in _INTERNATIONAL_DIGITS
    if run.isdigit():  # no separators at all: 10 digits or more (0612345678), not a count like 1000000
        return 10 <= digits <= 15
    return digits in _PHONE_DIGITS and not any(pattern.fullmatch(run) for pattern in _NOT_PHONES)
