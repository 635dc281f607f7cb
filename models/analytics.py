"""Per-conversation analytics from the event stream, each message counted once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

Stats = dict[str, Any]
SEEN_KEPT = 64  # re-delivered events come within a commit interval of the original


def new_stats() -> Stats:
    return {"messages": 0, "sources": {}, "intents": {}, "flags": {}, "fallbacks": {}, "seen": []}


def count(stats: Stats, message_id: str, source: str, intent: str | None,
          fallback_reason: str | None, flags: Iterable[str]) -> bool:  # fmt: skip
    """Add one event to ``stats``; False (and nothing counted) if it was counted before."""
    if message_id in stats["seen"]:
        return False
    stats["seen"] = [*stats["seen"][-(SEEN_KEPT - 1):], message_id]
    stats["messages"] += 1
    _bump(stats["sources"], source)
    _bump(stats["intents"], intent or "none")
    if fallback_reason:
        _bump(stats["fallbacks"], fallback_reason)
    for flag in flags:
        _bump(stats["flags"], flag)
    return True


def total(all_stats: Iterable[Stats]) -> dict[str, Any]:
    """Sum of many conversations' stats (without the de-duplication memory)."""
    out: dict[str, Any] = {"conversations": 0, "messages": 0}
    sums: dict[str, Counter[str]] = {k: Counter() for k in ("sources", "intents", "flags", "fallbacks")}
    for stats in all_stats:
        out["conversations"] += 1
        out["messages"] += stats["messages"]
        for key, counter in sums.items():
            counter.update(stats[key])
    return out | {key: dict(counter.most_common()) for key, counter in sums.items()}


def _bump(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1
