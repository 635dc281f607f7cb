"""Analytics counts each message once and sums conversations."""

from __future__ import annotations

from models import analytics


def test_each_message_counted_once() -> None:
    stats = analytics.new_stats()
    assert analytics.count(stats, "m1", "canned", "love_declaration", None, ["love_declaration"])
    assert not analytics.count(stats, "m1", "canned", "love_declaration", None, ["love_declaration"])
    assert analytics.count(stats, "m2", "retrieval", "hobbies", "deadline", [])
    assert stats["messages"] == 2
    assert stats["flags"] == {"love_declaration": 1}
    assert stats["fallbacks"] == {"deadline": 1}


def test_totals_sum_conversations() -> None:
    a, b = analytics.new_stats(), analytics.new_stats()
    analytics.count(a, "m1", "canned", "weather", None, [])
    analytics.count(b, "m2", "canned", "weather", None, [])
    analytics.count(b, "m3", "generative", None, None, [])
    totals = analytics.total([a, b])
    assert totals["conversations"] == 2 and totals["messages"] == 3
    assert totals["sources"] == {"canned": 2, "generative": 1}
    assert totals["intents"] == {"weather": 2, "none": 1}
