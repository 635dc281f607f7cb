"""The understand step: one encoder call serves the intent head and the responder, with
the same answers as running each model on its own; the responder reads the context,
the intent head does not."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from models import registry
from models.build import retrieval_eval
from models.config import ModelConfig
from models.responder import ContextWeights
from models.types import Dialogue, Utterance
from models.understand import SHORTLIST, Understander

pytestmark = pytest.mark.slow

TEXTS = (
    "what's the weather like today?",
    "I rebuilt an old bicycle with my grandfather",
    "you're my best friend",
    "tell me a joke",
)
ASKED = "Sure, ask me anything."
"""A bot line that is not in the bank: the step embeds it (once for the whole batch)."""
PIZZA = "Pizza is always the answer. What's the question?"


def dialogues() -> list[Dialogue]:
    said = Utterance("bot", ASKED)
    return [Dialogue((said, Utterance("user", text)), seed=i) for i, text in enumerate(TEXTS)]


def counting(encoder: Any, calls: list[list[str]]) -> None:
    original = encoder.encode

    def encode(texts: list[str]):  # type: ignore[no-untyped-def]
        calls.append(list(texts))
        return original(texts)

    encoder.encode = encode


def plain(config: ModelConfig) -> Understander:
    """The understand step without the selector: the responder's own best reply."""
    served = registry.load("understand", config)
    return Understander(served.intent, served.responder)


def test_understanding_matches_each_model_run_alone(built_config: ModelConfig) -> None:
    understander = plain(built_config)
    intent, responder = understander.intent, understander.responder
    batch = dialogues()
    understood = understander.predict(batch)
    alone = intent.predict([d.text for d in batch])
    told = [replace(d, intent=i.label) for d, i in zip(batch, alone, strict=True)]
    replies = responder.predict(told)
    for got, want_intent, want_reply in zip(understood, alone, replies, strict=True):
        assert got.intent.label == want_intent.label
        assert got.intent.confidence == pytest.approx(want_intent.confidence, abs=1e-5)
        assert got.reply.text == want_reply.text
        assert got.reply.score == pytest.approx(want_reply.score, abs=1e-5)


def test_one_encoder_call_per_batch_and_no_text_embedded_twice(built_config: ModelConfig) -> None:
    understander = plain(built_config)
    encoder = understander.intent.encoder
    calls: list[list[str]] = []
    counting(encoder, calls)
    try:
        first = understander.predict(dialogues())
        later = [
            Dialogue((*d.history, Utterance("bot", u.reply.text), Utterance("user", "really?")))
            for d, u in zip(dialogues(), first, strict=True)
        ]
        understander.predict(later)
    finally:
        del encoder.encode
    # the second turn's context (the previous messages, bank replies) is not embedded again
    assert calls == [[*TEXTS, ASKED], ["really?"]]
    assert understander.versions == {"intent": understander.intent.version, "responder": understander.responder.version}


def test_context_changes_the_reply_but_not_the_intent(built_config: ModelConfig) -> None:
    understander = plain(built_config)
    contexts = [
        (),
        (Utterance("user", "I'm starving"), Utterance("bot", PIZZA)),
        (Utterance("user", "my dog is so cute"), Utterance("bot", "Tell your furry friend I said hi.")),
        (Utterance("user", "I have a crush"), Utterance("bot", "Ooh, a crush! Tell me everything. Who is it?")),
    ]
    batch = [Dialogue((*before, Utterance("user", "yes!"))) for before in contexts]
    understood = understander.predict(batch)
    alone = understander.intent.predict(["yes!"])[0]
    assert all(u.intent.label == alone.label for u in understood)
    assert all(u.intent.confidence == pytest.approx(alone.confidence, abs=1e-5) for u in understood)
    intents = [understander.responder.tags(u.reply.text)[0] for u in understood[1:]]
    assert intents == ["food", "pets", "crush"]


def test_context_raises_the_hit_rate_on_the_retrieval_cases(built_config: ModelConfig) -> None:
    understander = plain(built_config)
    cases = retrieval_eval.cases()
    switches = [c for c in cases if c.topic_switch]
    assert len(cases) >= 50 and switches
    alone = retrieval_eval.hit_rate(understander, cases, ContextWeights(0.0, 0.0))
    mixed = retrieval_eval.hit_rate(understander, cases, ContextWeights())
    assert mixed >= 0.8 and mixed >= alone + 0.2
    assert retrieval_eval.hit_rate(understander, switches, ContextWeights()) >= 0.9


def test_the_served_step_answers_with_the_best_rated_option(built_config: ModelConfig) -> None:
    """With the selector, the reply is the best-rated of the retrieval shortlist and the backchannel reply."""
    served = registry.load("understand", built_config)
    batch = dialogues()
    understood = served.predict(batch)
    _, options = served.options(batch)
    assert served.scorer is not None
    for dialogue, got, found in zip(batch, understood, options, strict=True):
        assert [kind for _, kind in found] == ["retrieval"] * SHORTLIST + ["backchannel"]
        rated = served.scorer.assess([dialogue] * len(found), [c for c, _ in found], [k for _, k in found])
        assert got.reply.text in {c.text for c in rated}
        assert got.reply.quality == pytest.approx(max(c.quality or 0.0 for c in rated), abs=1e-4)
    assert served.versions["responder"] != served.responder.version  # the selection is part of the reply's version
