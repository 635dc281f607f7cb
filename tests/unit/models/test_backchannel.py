"""Backchannel replies: the kind of message, a reply for it, never the one just said."""

from __future__ import annotations

import pytest

from models import registry
from models.backchannel import Backchannel
from models.config import ModelConfig
from models.types import Dialogue, Utterance


@pytest.fixture(scope="module")
def backchannel(built_config: ModelConfig) -> Backchannel:
    return Backchannel(registry.encoder_for(built_config))


@pytest.mark.parametrize(
    ("text", "act"),
    [
        ("should i text him back?", "question"),
        ("my grandma is in the hospital and i'm scared", "negative"),
        ("I GOT THE JOB!!!", "positive"),
        ("thanks so much, that helped", "thanks"),
        ("hahaha", "laughter"),
        ("yeah", "short"),
        ("i'm making pasta for my roommates", "statement"),
    ],
)
def test_the_kind_of_message(backchannel: Backchannel, built_config: ModelConfig, text: str, act: str) -> None:
    vector = registry.encoder_for(built_config).encode([text])[0]
    assert backchannel.act(text, vector) == act


def test_replies_fit_the_kind_and_avoid_repeats(backchannel: Backchannel, built_config: ModelConfig) -> None:
    text = "my grandma is in the hospital and i'm scared"
    vector = registry.encoder_for(built_config).encode([text])[0]
    first = backchannel.reply(Dialogue((Utterance("user", text),), seed=1), vector)
    assert first.text in backchannel.replies["negative"]
    again = Dialogue((Utterance("user", "hi"), Utterance("bot", first.text), Utterance("user", text)), seed=1)
    assert backchannel.reply(again, vector).text != first.text
    assert backchannel.reply(Dialogue((Utterance("user", text),), seed=1), vector) == first  # seeded
