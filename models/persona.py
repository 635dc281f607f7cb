"""Canned persona replies: the sassy one-liners the router sends at once for confident,
simple intents (greetings, weather, "google it" questions, love declarations, ...)."""

from __future__ import annotations

import random
from functools import lru_cache

from models.dataset import CANNED_FILE, read_json

CANNED_INTENTS: frozenset[str] = frozenset({
    "greeting", "goodbye", "how_are_you", "who_are_you", "creator", "age", "location",
    "love_declaration", "best_friend", "weather", "search_it", "thanks", "compliment",
    "insult", "joke_request", "selfie", "birthday", "apology",
})


@lru_cache(maxsize=1)
def _replies() -> dict[str, tuple[str, ...]]:
    data: dict[str, list[str]] = read_json(CANNED_FILE)
    return {intent: tuple(texts) for intent, texts in data.items()}


def replies_for(intent: str) -> tuple[str, ...]:
    """Every canned reply written for ``intent``; KeyError if it is not canned."""
    if intent not in CANNED_INTENTS:
        raise KeyError(f"not a canned intent: {intent!r}")
    return _replies()[intent]


def canned_reply(intent: str, seed: int) -> str:
    """One canned reply for ``intent``, chosen deterministically from ``seed``."""
    options = replies_for(intent)
    return options[random.Random(f"{intent}:{seed}").randrange(len(options))]
