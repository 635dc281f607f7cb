"""Retrieval responder: replies from the persona bank with their similarity, seeded
choice among near-ties, no repeats within a conversation, intent preference."""

from __future__ import annotations

from typing import Any

import pytest

from models import responder
from models.types import Candidate, Dialogue, Utterance

pytestmark = pytest.mark.slow


def said(text: str, seed: int = 0, intent: str | None = None,
         before: tuple[Utterance, ...] = ()) -> Dialogue:
    return Dialogue((*before, Utterance("user", text)), intent=intent, seed=seed)


def test_returns_a_bank_reply_with_its_similarity(responder_model: Any) -> None:
    bank = {text for _, text in responder.bank()}
    results = responder_model.predict([said("my girlfriend just dumped me"), said("hi!")])
    assert all(isinstance(c, Candidate) and c.text in bank for c in results)
    assert all(-1.0 <= c.score <= 1.0 for c in results)
    assert responder_model.predict([]) == []


def test_reply_fits_the_situation(responder_model: Any) -> None:
    situations = dict((text, s) for s, text in responder.bank())
    reply = responder_model.predict([said("my boyfriend broke up with me yesterday")])[0]
    assert situations[reply.text] in {"breakup", "sadness"}


def test_same_seed_same_reply(responder_model: Any) -> None:
    dialogues = [said("I love pizza", seed=s) for s in range(8)]
    first = responder_model.predict(dialogues)
    again = responder_model.predict(dialogues[::-1])[::-1]
    assert first == again


def test_does_not_repeat_its_last_reply(responder_model: Any) -> None:
    reply = responder_model.predict([said("I'm so bored")])[0]
    history = (Utterance("user", "I'm so bored"), Utterance("bot", reply.text))
    follow_up = responder_model.predict([said("I'm so bored", before=history)])[0]
    assert follow_up.text != reply.text


def test_known_intent_is_preferred(responder_model: Any) -> None:
    situations = dict((text, s) for s, text in responder.bank())
    reply = responder_model.predict([said("tell me something", intent="joke_request")])[0]
    assert situations[reply.text] == "joke_request"
