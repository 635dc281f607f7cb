"""The routing policy: which model's output answers a message, and when.

A pure function of the situation (the message and its history), the outputs seen
so far, and whether the deadline has come. It knows nothing of Kafka or time.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from models import persona

Source = Literal["canned", "retrieval", "generative", "fallback"]
SOURCE_OF_MODEL: dict[str, Source] = {"responder": "retrieval", "generator": "generative"}
REPLY_MODELS = ("responder", "generator")

FALLBACK_LINES = (
    "Hold that thought, my brain is buffering. Say it again?",
    "I got distracted by how interesting you are. Come again?",
    "My circuits are doing yoga right now. One more time?",
    "Hmm, I lost my train of thought. What were we saying?",
    "Give me a second, I'm choosing my sassiest answer.",
)


@dataclass(frozen=True)
class PolicyConfig:
    """Thresholds of the routing policy (from settings)."""

    canned_confidence: float = 0.7
    uncertain_confidence: float = 0.55
    long_conversation_turns: int = 6
    min_retrieval_score: float = 0.25
    max_echo_similarity: float = 0.8


@dataclass(frozen=True)
class Seen:
    """One model's output as the router saw it."""

    model: str
    status: Literal["ok", "skipped", "error"]
    label: str | None = None
    confidence: float | None = None
    in_scope: bool | None = None
    text: str | None = None
    score: float | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Situation:
    """The message being answered: its text, turn number and recent bot replies."""

    text: str
    turn: int
    recent_bot: tuple[str, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class Decision:
    """The reply chosen: its text, where it came from, and why it is a fallback."""

    text: str
    source: Source
    model: str | None
    fallback_reason: str | None = None
    why: str = ""


def preferred_model(situation: Situation, intent: Seen | None, config: PolicyConfig) -> str:
    """The generator for long, uncertain or out-of-scope talk; retrieval otherwise."""
    return _preference(situation, intent, config)[0]


def _preference(situation: Situation, intent: Seen | None, config: PolicyConfig) -> tuple[str, str]:
    """The preferred reply model and why, in words."""
    if situation.turn >= config.long_conversation_turns:
        return "generator", f"long conversation (turn {situation.turn})"
    if intent is None or not intent.ok:
        return "generator", "no intent"
    if not intent.in_scope:
        return "generator", "out of scope"
    confidence = intent.confidence or 0.0
    if confidence < config.uncertain_confidence:
        return "generator", f"uncertain intent ({confidence:.2f})"
    return "responder", f"in-scope intent ({confidence:.2f})"


def decide(
    situation: Situation, outputs: Mapping[str, Seen], config: PolicyConfig, final: bool
) -> Decision | None:
    """The reply to send now, or None to keep waiting (never None when ``final``)."""
    intent = outputs.get("intent")
    if canned := _canned(situation, intent, config):
        return canned
    if intent is None and not final:
        return None
    prefer, why = _preference(situation, intent, config)
    other = "responder" if prefer == "generator" else "generator"
    first, second = outputs.get(prefer), outputs.get(other)
    if _good(first, situation, config):
        return _from(first, None, why)  # type: ignore[arg-type]
    if first is None and not final:
        return None
    reason = _why_not(first, situation, config)
    why = f"{why}; {prefer} {reason}"
    if _good(second, situation, config):
        return _from(second, reason, why)  # type: ignore[arg-type]
    if second is None and not final:
        return None
    return _last_resort(situation, outputs, reason, why)


def _canned(situation: Situation, intent: Seen | None, config: PolicyConfig) -> Decision | None:
    if intent is None or not intent.ok or not intent.in_scope or intent.label is None:
        return None
    if intent.label not in persona.CANNED_INTENTS:
        return None
    if (intent.confidence or 0.0) < config.canned_confidence:
        return None
    why = f"confident {intent.label} ({intent.confidence or 0.0:.2f})"
    return Decision(persona.canned_reply(intent.label, situation.seed), "canned", "intent", why=why)


def _from(seen: Seen, reason: str | None, why: str) -> Decision:
    return Decision(seen.text or "", SOURCE_OF_MODEL[seen.model], seen.model, reason, why)


def _last_resort(situation: Situation, outputs: Mapping[str, Seen], reason: str | None, why: str) -> Decision:
    """Any usable reply text beats the fallback line, even a weak retrieval."""
    for model in REPLY_MODELS:
        seen = outputs.get(model)
        if seen is not None and seen.ok and _usable(seen.text, situation):
            return _from(seen, reason or "weak", f"{why}; best of what came")
    line = FALLBACK_LINES[situation.seed % len(FALLBACK_LINES)]
    return Decision(line, "fallback", None, reason or "no_output", f"{why}; no usable reply")


def _why_not(seen: Seen | None, situation: Situation, config: PolicyConfig) -> str:
    if seen is None:
        return "deadline"
    if seen.status == "skipped":
        return "degraded" if seen.reason == "degraded" else "skipped"
    if seen.status == "error":
        return "error"
    return "weak"


def _good(seen: Seen | None, situation: Situation, config: PolicyConfig) -> bool:
    if seen is None or not seen.ok or not _usable(seen.text, situation):
        return False
    if seen.model == "responder":
        return (seen.score or 0.0) >= config.min_retrieval_score
    return echo_similarity(seen.text or "", situation.text) < config.max_echo_similarity


def _usable(text: str | None, situation: Situation) -> bool:
    """Non-empty and not a repeat of one of the bot's recent replies."""
    if text is None or len(_words(text)) == 0:
        return False
    return _normal(text) not in {_normal(bot) for bot in situation.recent_bot}


def echo_similarity(reply: str, user_text: str) -> float:
    """Word-set Jaccard similarity: high when a reply merely parrots the user."""
    a, b = set(_words(reply)), set(_words(user_text))
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _normal(text: str) -> str:
    return " ".join(_words(text))


def seed_of(message_id: str) -> int:
    """A stable sampling seed per message: the same message always gets the same reply."""
    return zlib.crc32(message_id.encode())
