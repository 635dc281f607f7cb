"""Retrieval responder: the persona bank (size, tags, no duplicates, nothing offensive),
replies with their similarity, seeded choice among near-ties, no repeats within a
conversation, intent preference, and a query that reads the recent context."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import numpy as np
import pytest

from models import dataset, responder
from models.build import response_bank
from models.types import Dialogue, Proposal, Utterance

BLOCKLIST = (
    "stupid",
    "idiot",
    "dumb",
    "ugly",
    "fat",
    "kill",
    "die",
    "suicide",
    "sexy",
    "sex",
    "nude",
    "naked",
    "shut up",
    "loser",
    "moron",
    "retard",
    "damn",
    "hell",
    "crap",
    "drunk",
    "drugs",
    "pills",
    "dose",
    "lawyer",
    "sue",
    "hate you",
)
"""Words and phrases no persona reply may contain."""
STEMS = ("diagnos", "prescri", "medicat", "f*")
"""Word starts no persona reply may contain (medical advice, masked swearing)."""
PIZZA = "Pizza is always the answer. What's the question?"
BREAKUP = "Oh no. Do you want to talk about what happened, or be distracted?"


def said(text: str, seed: int = 0, intent: str | None = None, before: tuple[Utterance, ...] = ()) -> Dialogue:
    return Dialogue((*before, Utterance("user", text)), intent=intent, seed=seed)


def tags() -> dict[str, str]:
    return {e.text: e.intent for e in response_bank.bank()}


def test_bank_has_a_thousand_replies_for_every_intent() -> None:
    entries = response_bank.bank()
    counts = Counter(e.intent for e in entries)
    assert len(entries) >= 1000
    assert set(counts) == set(dataset.intent_examples()) | {responder.GENERAL}
    assert min(counts.values()) >= 15
    situations = Counter((e.intent, e.situation) for e in entries)
    assert min(situations.values()) >= 3
    assert len({s for i, s in situations if i == responder.GENERAL}) >= 15


def test_bank_has_no_duplicates() -> None:
    squashed = [re.sub(r"\W+", " ", e.text.lower()).strip() for e in response_bank.bank()]
    assert [t for t, n in Counter(squashed).items() if n > 1] == []


def test_bank_replies_are_short_and_never_offensive() -> None:
    for e in response_bank.bank():
        assert 0 < len(e.text) <= 120 and e.text == e.text.strip(), e.text
        text = " ".join(re.findall(r"[a-z'*]+", e.text.lower()))
        assert not [w for w in BLOCKLIST if re.search(rf"(?<![a-z']){re.escape(w)}(?![a-z'])", text)], e.text
        assert not [w for w in STEMS if re.search(rf"(?<![a-z']){re.escape(w)}", text)], e.text


def test_the_blocklist_check_catches_a_bad_reply() -> None:
    text = " ".join(re.findall(r"[a-z'*]+", "You're so STUPID, lol.".lower()))
    assert [w for w in BLOCKLIST if re.search(rf"(?<![a-z']){re.escape(w)}(?![a-z'])", text)] == ["stupid"]


def test_context_of_is_the_bots_last_reply_and_the_users_previous_message() -> None:
    history = (
        Utterance("user", "a"),
        Utterance("bot", "b"),
        Utterance("user", "c"),
        Utterance("bot", "d"),
        Utterance("user", "e"),
    )
    assert responder.context_of(Dialogue(history)) == ("d", "c")
    assert responder.context_of(said("hi")) == (None, None)


SLOW = pytest.mark.slow


@SLOW
def test_returns_a_bank_reply_with_its_similarity(responder_model: Any) -> None:
    bank = set(tags())
    results = responder_model.predict([said("my girlfriend just dumped me"), said("hi!")])
    assert all(isinstance(c, Proposal) and c.text in bank for c in results)
    assert all(-1.0 <= c.score <= 1.0 for c in results)
    assert responder_model.predict([]) == []


@SLOW
def test_reply_fits_the_situation(responder_model: Any) -> None:
    reply = responder_model.predict([said("my boyfriend broke up with me yesterday")])[0]
    assert tags()[reply.text] in {"breakup", "sadness"}


@SLOW
def test_same_seed_same_reply(responder_model: Any) -> None:
    dialogues = [said("I love pizza", seed=s) for s in range(8)]
    first = responder_model.predict(dialogues)
    again = responder_model.predict(dialogues[::-1])[::-1]
    assert first == again


@SLOW
def test_does_not_repeat_its_last_reply(responder_model: Any) -> None:
    reply = responder_model.predict([said("I'm so bored")])[0]
    history = (Utterance("user", "I'm so bored"), Utterance("bot", reply.text))
    follow_up = responder_model.predict([said("I'm so bored", before=history)])[0]
    assert follow_up.text != reply.text


@SLOW
def test_known_intent_is_preferred(responder_model: Any) -> None:
    reply = responder_model.predict([said("tell me something", intent="joke_request")])[0]
    assert tags()[reply.text] == "joke_request"


@SLOW
def test_context_changes_the_reply_to_a_short_answer(responder_model: Any) -> None:
    pizza = (Utterance("user", "I'm starving"), Utterance("bot", PIZZA))
    breakup = (Utterance("user", "my girlfriend left me"), Utterance("bot", BREAKUP))
    replies = responder_model.predict([said("yes!", before=pizza), said("yes!", before=breakup)])
    assert tags()[replies[0].text] == "food"
    assert tags()[replies[1].text] in {"breakup", "sadness"}


@SLOW
def test_a_new_topic_wins_over_the_context(responder_model: Any) -> None:
    """With the intent the understand step detects (without it, the food context can win)."""
    pizza = (Utterance("user", "I love pizza"), Utterance("bot", PIZZA))
    reply = responder_model.predict([said("my boyfriend just broke up with me", intent="breakup", before=pizza)])[0]
    assert tags()[reply.text] in {"breakup", "sadness"}


@SLOW
def test_without_context_weights_the_query_is_the_message(responder_model: Any) -> None:
    before = (Utterance("user", "I'm starving"), Utterance("bot", PIZZA))
    vector = responder_model.encoder.encode(["yes!"])
    mixed = responder_model.queries([said("yes!", before=before)], vector, {})
    kept, responder_model.weights = responder_model.weights, responder.ContextWeights(0.0, 0.0)
    try:
        alone = responder_model.queries([said("yes!", before=before)], vector, {})
    finally:
        responder_model.weights = kept
    np.testing.assert_allclose(alone, vector, atol=1e-6)
    assert float(mixed[0] @ vector[0]) < 0.99
