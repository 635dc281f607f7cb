"""The routing policy, without Kafka: canned at once; otherwise the candidate the selector
rates best, waiting for the generator unless retrieval is already good enough; the reason
when the generator had nothing; a safe line when no model gave a usable reply."""

from __future__ import annotations

import pytest

from models import persona
from models.policy import FALLBACK_LINES, PolicyConfig, Seen, Situation, decide

CONFIG = PolicyConfig(canned_confidence=0.7, accept_now=0.8)
CANNED = sorted(persona.CANNED_INTENTS)[0]
SHORT = Situation("tell me about your day", turn=1, seed=7)


def intent(label: str = "hobbies", confidence: float = 0.9, in_scope: bool = True) -> Seen:
    return Seen("intent", "ok", label=label, confidence=confidence, in_scope=in_scope)


def responder(text: str = "Painting? Fancy. Show me later.", quality: float | None = 0.6) -> Seen:
    return Seen("responder", "ok", text=text, score=0.6, quality=quality)


def generator(text: str = "honestly my day was all drama, yours?", quality: float | None = 0.7) -> Seen:
    return Seen("generator", "ok", text=text, score=-1.2, quality=quality)


def test_confident_canned_intent_answers_at_once() -> None:
    decision = decide(SHORT, {"intent": intent(CANNED, 0.95)}, CONFIG, final=False)
    assert decision is not None and decision.source == "canned"
    assert decision.text == persona.canned_reply(CANNED, SHORT.seed)


def test_unconfident_canned_intent_is_not_canned() -> None:
    assert decide(SHORT, {"intent": intent(CANNED, 0.5)}, CONFIG, final=False) is None


def test_waits_for_intent_before_deadline() -> None:
    assert decide(SHORT, {"responder": responder()}, CONFIG, final=False) is None


def test_waits_for_the_generator_when_retrieval_is_not_good_enough() -> None:
    assert decide(SHORT, {"intent": intent(), "responder": responder(quality=0.6)}, CONFIG, final=False) is None


def test_good_retrieval_answers_without_waiting_for_the_generator() -> None:
    decision = decide(SHORT, {"intent": intent(), "responder": responder(quality=0.85)}, CONFIG, final=False)
    assert decision is not None and decision.source == "retrieval"
    assert decision.fallback_reason == "deadline"  # made without the generator's candidate, and says so


@pytest.mark.parametrize(
    ("retrieval", "generated", "source"), [(0.6, 0.7, "generative"), (0.7, 0.6, "retrieval"), (0.5, 0.5, "retrieval")]
)
def test_the_better_candidate_wins(retrieval: float, generated: float, source: str) -> None:
    outputs = {"intent": intent(), "responder": responder(quality=retrieval), "generator": generator(quality=generated)}
    decision = decide(SHORT, outputs, CONFIG, final=False)
    assert decision is not None and decision.source == source
    assert decision.fallback_reason is None  # both candidates were there: a fair choice


def test_turn_number_no_longer_decides() -> None:
    outputs = {"intent": intent(), "responder": responder(quality=0.7), "generator": generator(quality=0.3)}
    for turn in (1, 6, 20):
        decision = decide(Situation("so anyway", turn=turn), outputs, CONFIG, final=False)
        assert decision is not None and decision.source == "retrieval"


def test_late_generator_leaves_retrieval_at_deadline() -> None:
    decision = decide(SHORT, {"intent": intent(confidence=0.3), "responder": responder()}, CONFIG, final=True)
    assert decision is not None
    assert (decision.source, decision.fallback_reason) == ("retrieval", "deadline")


@pytest.mark.parametrize(
    ("gen", "reason"),
    [
        (Seen("generator", "skipped", reason="predicted_miss"), "skipped"),
        (Seen("generator", "skipped", reason="degraded"), "degraded"),
        (Seen("generator", "error", reason="RuntimeError"), "error"),
        (generator(""), "weak"),
        (generator("a rude reply", quality=0.0), "weak"),
    ],
)
def test_generator_failures_leave_retrieval_with_reason(gen: Seen, reason: str) -> None:
    outputs = {"intent": intent(confidence=0.3), "responder": responder(quality=0.1), "generator": gen}
    decision = decide(SHORT, outputs, CONFIG, final=False)
    assert decision is not None
    assert (decision.source, decision.fallback_reason) == ("retrieval", reason)


def test_repeating_a_recent_bot_reply_is_never_chosen() -> None:
    situation = Situation("and then?", turn=8, recent_bot=("honestly my day was all drama, yours?",))
    outputs = {"intent": intent(), "responder": responder(quality=0.2), "generator": generator(quality=0.9)}
    decision = decide(situation, outputs, CONFIG, final=False)
    assert decision is not None and decision.source == "retrieval"


def test_nothing_at_deadline_gives_a_safe_line() -> None:
    decision = decide(SHORT, {}, CONFIG, final=True)
    assert decision is not None and decision.source == "fallback"
    assert decision.text in FALLBACK_LINES and decision.fallback_reason == "deadline"


def test_a_weak_reply_beats_the_fallback_line() -> None:
    decision = decide(SHORT, {"intent": intent(), "responder": responder(quality=0.05)}, CONFIG, final=True)
    assert decision is not None and decision.source == "retrieval"


def test_unscored_candidates_still_answer() -> None:
    decision = decide(SHORT, {"intent": intent(), "responder": responder(quality=None)}, CONFIG, final=True)
    assert decision is not None and decision.source == "retrieval"


def test_decisions_are_deterministic() -> None:
    outputs = {"intent": intent(), "responder": responder(), "generator": generator()}
    assert decide(SHORT, outputs, CONFIG, False) == decide(SHORT, outputs, CONFIG, False)


def test_every_decision_says_why() -> None:
    canned = decide(SHORT, {"intent": intent(CANNED, 0.95)}, CONFIG, final=False)
    assert canned is not None and canned.why.startswith(f"confident {CANNED}")
    late = decide(SHORT, {"intent": intent(confidence=0.3), "responder": responder()}, CONFIG, final=True)
    assert late is not None and late.why == "best quality: responder (responder 0.60; generator deadline)"
    both = {"intent": intent(), "responder": responder(), "generator": generator()}
    chosen = decide(SHORT, both, CONFIG, final=False)
    assert chosen is not None and chosen.why == "best quality: generator (generator 0.70; responder 0.60)"
