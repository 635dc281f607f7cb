"""Redaction takes e-mail addresses and phone numbers out of a text and leaves other numbers alone."""

from __future__ import annotations

import pytest

from models.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to john.doe+tag@mail.example.co.uk.", "write to [email]."),
        ("Ana.Pérez@correo.es or bob@x.io", "[email] or [email]"),
        ("MAIL@EXAMPLE.COM", "[email]"),
    ],
)
def test_email_addresses_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "phone",
    [
        "+1 415 555 2671",
        "+1-415-555-2671",
        "+14155552671",
        "+44 20 7946 0958",
        "+33 1 23 45 67 89",
        "+49 (0)30 1234567",
        "(+34) 612 345 678",
        "0044 20 7946 0958",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "555-1234",
        "020 7946 0958",
        "07700 900123",
        "06 12 34 56 78",
        "06.12.34.56.78",
        "0612345678",
        "612 345 678",
    ],
)
def test_international_and_local_phone_numbers_are_redacted(phone: str) -> None:
    assert redact(f"call me on {phone} tonight") == "call me on [phone] tonight"


@pytest.mark.parametrize(
    "text",
    [
        "I'm 25 and my sister is 31",
        "see you at 10:30, or 10.30 if you're British",
        "on 2026-11-30 10:30 UTC",
        "born 30/11/1999, or 11.30.99",
        "it ran from 1990-2024, then 1990 - 2024 again",
        "pi is 3.14159265",
        "1 000 000 reasons, 1.000.000 in German, 1,000,000 in English",
        "route 66 in 2025, room 101, top 10",
        "version 1.2.3, build v20261130",
        "@mention a friend, or email me at home",
        "",
    ],
)
def test_ages_times_dates_and_counts_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_a_text_with_both_keeps_the_rest() -> None:
    text = "I'm 25, text +44 7700 900123 or ana@example.org after 18:00 on 01/12/2026"
    assert redact(text) == "I'm 25, text [phone] or [email] after 18:00 on 01/12/2026"


def test_none_stays_none() -> None:
    assert redact(None) is None
