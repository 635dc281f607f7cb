"""The understand step: one embedding serves the intent head and the responder, with the
same answers as running each model on its own."""

from __future__ import annotations

from dataclasses import replace

import pytest

from models import registry
from models.config import ModelConfig
from models.types import Dialogue, Utterance

TEXTS = ("what's the weather like today?", "I rebuilt an old bicycle with my grandfather",
         "you're my best friend", "tell me a joke")  # fmt: skip


def dialogues() -> list[Dialogue]:
    said = Utterance("bot", "Sure, ask me anything.")
    return [Dialogue((said, Utterance("user", text)), seed=i) for i, text in enumerate(TEXTS)]


@pytest.mark.slow
def test_understanding_matches_each_model_run_alone(built_config: ModelConfig) -> None:
    understander = registry.load("understand", built_config)
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


@pytest.mark.slow
def test_understanding_encodes_each_message_once(built_config: ModelConfig) -> None:
    understander = registry.load("understand", built_config)
    encoder = understander.intent.encoder
    calls: list[int] = []
    original = encoder.encode

    def counting(texts: list[str]):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return original(texts)

    encoder.encode = counting  # type: ignore[method-assign]
    try:
        understander.predict(dialogues())
    finally:
        del encoder.encode
    assert calls == [len(TEXTS)]
    assert understander.versions == {"intent": understander.intent.version,
                                     "responder": understander.responder.version}  # fmt: skip
