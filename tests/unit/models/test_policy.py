"""The routing policy, without Kafka: canned at once, generator for long or uncertain
talk, retrieval when the generator is late, weak or failed, a safe line when nothing came."""

from __future__ import annotations

import pytest

from models import persona
from models.policy import FALLBACK_LINES, PolicyConfig, Seen, Situation, decide, echo_similarity, preferred_model

CONFIG = PolicyConfig(canned_confidence=0.7, uncertain_confidence=0.55, long_conversation_turns=6)
CANNED = sorted(persona.CANNED_INTENTS)[0]
SHORT = Situation("tell me about your day", turn=1, seed=7)


def intent(label: str = "hobbies", confidence: float = 0.9, in_scope: bool = True) -> Seen:
    return Seen("intent", "ok", label=label, confidence=confidence, in_scope=in_scope)


def responder(text: str = "Painting? Fancy. Show me later.", score: float = 0.6) -> Seen:
    return Seen("responder", "ok", text=text, score=score)


def generator(text: str = "honestly my day was all drama, yours?") -> Seen:
    return Seen("generator", "ok", text=text, score=-1.2)


def test_confident_canned_intent_answers_at_once() -> None:
    decision = decide(SHORT, {"intent": intent(CANNED, 0.95)}, CONFIG, final=False)
    assert decision is not None and decision.source == "canned"
    assert decision.text == persona.canned_reply(CANNED, SHORT.seed)


def test_unconfident_canned_intent_is_not_canned() -> None:
    decision = decide(SHORT, {"intent": intent(CANNED, 0.5)}, CONFIG, final=False)
    assert decision is None


def test_waits_for_intent_before_deadline() -> None:
    assert decide(SHORT, {"responder": responder()}, CONFIG, final=False) is None


def test_in_scope_short_talk_prefers_retrieval_without_waiting_for_generator() -> None:
    decision = decide(SHORT, {"intent": intent(), "responder": responder()}, CONFIG, final=False)
    assert decision is not None and decision.source == "retrieval" and decision.fallback_reason is None


@pytest.mark.parametrize(
    ("situation", "seen"),
    [
        (Situation("so anyway", turn=9), intent()),
        (SHORT, intent(confidence=0.3)),
        (SHORT, intent("oos", 0.9, in_scope=False)),
    ],
)
def test_generator_preferred_for_long_uncertain_or_out_of_scope(situation: Situation, seen: Seen) -> None:
    assert preferred_model(situation, seen, CONFIG) == "generator"
    outputs = {"intent": seen, "responder": responder()}
    assert decide(situation, outputs, CONFIG, final=False) is None  # waits for the generator
    decision = decide(situation, {**outputs, "generator": generator()}, CONFIG, final=False)
    assert decision is not None and decision.source == "generative"


def test_late_generator_falls_back_to_retrieval_at_deadline() -> None:
    outputs = {"intent": intent(confidence=0.3), "responder": responder()}
    decision = decide(SHORT, outputs, CONFIG, final=True)
    assert decision is not None
    assert (decision.source, decision.fallback_reason) == ("retrieval", "deadline")


@pytest.mark.parametrize(
    ("gen", "reason"),
    [
        (Seen("generator", "skipped", reason="predicted_miss"), "skipped"),
        (Seen("generator", "skipped", reason="degraded"), "degraded"),
        (Seen("generator", "error", reason="RuntimeError"), "error"),
        (generator(""), "weak"),
        (generator("tell me about your day"), "weak"),
    ],
)
def test_generator_failures_fall_back_with_reason(gen: Seen, reason: str) -> None:
    outputs = {"intent": intent(confidence=0.3), "responder": responder(), "generator": gen}
    decision = decide(SHORT, outputs, CONFIG, final=False)
    assert decision is not None
    assert (decision.source, decision.fallback_reason) == ("retrieval", reason)


def test_repeating_the_last_bot_reply_is_weak() -> None:
    situation = Situation("and then?", turn=8, recent_bot=("honestly my day was all drama, yours?",))
    outputs = {"intent": intent(), "responder": responder(), "generator": generator()}
    decision = decide(situation, outputs, CONFIG, final=False)
    assert decision is not None and decision.source == "retrieval"


def test_nothing_at_deadline_gives_a_safe_line() -> None:
    decision = decide(SHORT, {}, CONFIG, final=True)
    assert decision is not None and decision.source == "fallback"
    assert decision.text in FALLBACK_LINES and decision.fallback_reason == "deadline"


def test_weak_retrieval_beats_the_fallback_line() -> None:
    outputs = {"intent": intent(), "responder": responder(score=0.05)}
    decision = decide(SHORT, outputs, CONFIG, final=True)
    assert decision is not None and decision.source == "retrieval"


def test_decisions_are_deterministic() -> None:
    outputs = {"intent": intent(CANNED, 0.99)}
    assert decide(SHORT, outputs, CONFIG, False) == decide(SHORT, outputs, CONFIG, False)


def test_echo_similarity() -> None:
    assert echo_similarity("I love pizza", "i LOVE pizza!") == 1.0
    assert echo_similarity("pizza", "sushi") == 0.0


def test_every_decision_says_why() -> None:
    canned = decide(SHORT, {"intent": intent(CANNED, 0.95)}, CONFIG, final=False)
    assert canned is not None and canned.why.startswith(f"confident {CANNED}")
    late = decide(SHORT, {"intent": intent(confidence=0.3), "responder": responder()}, CONFIG, final=True)
    assert late is not None and late.why == "uncertain intent (0.30); generator deadline"
    long_talk = Situation("so anyway", turn=9)
    chosen = decide(long_talk, {"intent": intent(), "generator": generator()}, CONFIG, final=False)
    assert chosen is not None and chosen.why == "long conversation (turn 9)"
