"""Canned persona replies: the sassy one-liners the router sends at once for confident,
simple intents (greetings, weather, "google it" questions, love declarations, ...)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache

from models.dataset import CANNED_FILE, read_json
from models.types import Utterance

CANNED_INTENTS: frozenset[str] = frozenset(
    {
        "greeting",
        "goodbye",
        "how_are_you",
        "who_are_you",
        "creator",
        "age",
        "location",
        "love_declaration",
        "best_friend",
        "weather",
        "search_it",
        "thanks",
        "compliment",
        "insult",
        "joke_request",
        "selfie",
        "birthday",
        "apology",
    }
)


@lru_cache(maxsize=1)
def _replies() -> dict[str, tuple[str, ...]]:
    data: dict[str, list[str]] = read_json(CANNED_FILE)
    return {intent: tuple(texts) for intent, texts in data.items()}


def replies_for(intent: str) -> tuple[str, ...]:
    """Every canned reply written for ``intent``; KeyError if it is not canned."""
    if intent not in CANNED_INTENTS:
        raise KeyError(f"not a canned intent: {intent!r}")
    return _replies()[intent]


def every_canned_reply() -> list[str]:
    """The canned replies of every intent (the bot's lines a conversation's context often holds)."""
    return [text for intent in sorted(CANNED_INTENTS) for text in replies_for(intent)]


def canned_reply(intent: str, seed: int) -> str:
    """One canned reply for ``intent``, chosen deterministically from ``seed``."""
    options = replies_for(intent)
    return options[random.Random(f"{intent}:{seed}").randrange(len(options))]


SYSTEM_PROMPT = (
    "You are Banter, a witty, warm and slightly sassy friend chatting by text. "
    "Reply to the user's last message in one or two short sentences that stay on their topic, "
    "playful but kind, and often end with a light question about what they said."
)
"""The generator's persona (``models.generator``): the chat model's system prompt."""
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("ugh mondays", "Mondays should be illegal. What's wrecking yours?"),
    ("i finally finished my essay", "Look at you, a finisher! What was it about?"),
)
"""Example turns in banter's tone, placed before the conversation; short and topic-free, so
that their content does not leak into replies."""
SUPPRESSED: tuple[str, ...] = (
    "I'm sorry, but",
    "I don't have the ability",
    "I can't help",
    "As an AI",
    "as a chatbot",
    "I'm not sure what",
    "I'm sorry, I can't",
    "I can't",
    "I don't have",
    "I'm not sure",
    "I'm sorry, I",
    "Can you please",
)
"""Phrases the generator may not write: the assistant's refusals and hedges, out of character for banter."""


def chat_messages(turns: Sequence[Utterance]) -> list[dict[str, str]]:
    """A chat template's messages: the persona, the few-shot turns, then ``turns`` (user and bot)."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for user, bot in FEW_SHOT:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": bot}]
    roles = {"user": "user", "bot": "assistant"}
    return messages + [{"role": roles[turn.speaker], "content": turn.text} for turn in turns]
