"""The gateway's bounded memory: the ledger, conversations and token buckets."""

from __future__ import annotations

import pytest

from schemas import Event, Message, Reply
from schemas.http import ConversationTurn
from streams.gateway_state import Conflict, Conversations, Ledger, RateLimits, TokenBucket


def message(message_id: str = "m1", text: str = "hi", conversation: str = "c1") -> Message:
    return Message(message_id, conversation, "u1", "web", text, 1.0)


def reply(message_id: str = "m1", text: str = "hey") -> Reply:
    return Reply(message_id, "c1", "u1", "web", text, "canned", "greeting", 10.0, 2.0)


def test_a_retry_with_the_same_body_is_not_new() -> None:
    ledger = Ledger(10)
    first, new = ledger.admit(message())
    again, new_again = ledger.admit(message())
    assert new and not new_again and again is first


def test_the_same_message_id_with_another_body_is_a_conflict() -> None:
    ledger = Ledger(10)
    ledger.admit(message())
    with pytest.raises(Conflict):
        ledger.admit(message(text="something else"))


def test_a_message_seen_on_kafka_is_not_produced_again() -> None:
    ledger = Ledger(10)
    ledger.saw_message(message())
    _, new = ledger.admit(message())
    assert not new


def test_the_first_reply_answers_and_a_repeat_is_ignored() -> None:
    ledger = Ledger(10)
    entry, _ = ledger.admit(message())
    assert entry.status().status == "pending"
    assert ledger.saw_reply(reply()) is entry
    assert ledger.saw_reply(reply(text="a repeat after a crash")) is None
    assert entry.answered.is_set()
    assert entry.status().status == "answered" and entry.status().reply == reply()


def test_an_event_joins_its_message() -> None:
    ledger = Ledger(10)
    ledger.admit(message())
    ledger.saw_event(Event("m1", "c1", "web", 1, "greeting", 0.9, "canned", None, 10.0))
    entry = ledger.get("m1")
    assert entry is not None and entry.status().event is not None


def test_the_ledger_keeps_only_the_newest() -> None:
    ledger = Ledger(3)
    for i in range(10):
        ledger.admit(message(f"m{i}"))
    assert len(ledger) == 3
    assert ledger.get("m6") is None and ledger.get("m9") is not None


def turn(speaker: str, message_id: str, at: float) -> ConversationTurn:
    return ConversationTurn(speaker, f"{speaker} says", message_id, at)  # type: ignore[arg-type]


def test_conversations_are_bounded_in_number_and_length() -> None:
    conversations = Conversations(capacity=2, turns=3)
    for c in range(5):
        for i in range(10):
            conversations.add(f"c{c}", "web", turn("user", f"m{i}", float(i)))
    assert len(conversations) == 2
    assert [t.message_id for t in conversations.recent("c4", None)] == ["m7", "m8", "m9"]
    assert conversations.recent("c0", None) == []


def test_history_is_ordered_deduplicated_and_per_platform() -> None:
    conversations = Conversations(capacity=10, turns=10)
    conversations.add("c", "web", turn("bot", "m1", 2.0))
    conversations.add("c", "web", turn("user", "m1", 1.0))
    conversations.add("c", "web", turn("bot", "m1", 2.0))  # a reply read twice
    conversations.add("c", "app", turn("user", "m2", 3.0))
    assert [(t.speaker, t.message_id) for t in conversations.recent("c", "web")] == [("user", "m1"), ("bot", "m1")]
    assert len(conversations.recent("c", None)) == 3


def test_a_token_bucket_allows_its_burst_then_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0
    assert bucket.take() > 0


def test_rate_limits_are_per_caller() -> None:
    limits = RateLimits(rate=0.001, burst=1)
    assert limits.take("web") == 0.0
    assert limits.take("web") > 0
    assert limits.take("app") == 0.0
