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
    """Thresholds of the routing policy (from settings and the fitted selector)."""

    canned_confidence: float = 0.7
    accept_now: float = 1.0
    """A retrieval reply of at least this quality is sent without waiting for the generator
    (``models.selector``: fitted so that the generator rarely beats it)."""


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
    quality: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def rank(self) -> float:
        """The selector's quality (0 when the model gave none)."""
        return self.quality if self.quality is not None else 0.0


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


def decide(situation: Situation, outputs: Mapping[str, Seen], config: PolicyConfig, final: bool) -> Decision | None:
    """The reply to send now, or None to keep waiting (never None when ``final``).

    A confident canned intent answers at once. Otherwise the best candidate by the
    selector's quality wins; before the deadline the router waits for every reply model
    unless retrieval is already good enough (``accept_now``).
    """
    intent = outputs.get("intent")
    if canned := _canned(situation, intent, config):
        return canned
    if intent is None and not final:
        return None
    usable = [seen for model in REPLY_MODELS if (seen := outputs.get(model)) is not None and _good(seen, situation)]
    best = max(usable, key=lambda seen: (seen.rank, seen.model == "responder"), default=None)
    missing = [model for model in REPLY_MODELS if model not in outputs]
    if missing and not final and (best is None or best.rank < config.accept_now):
        return None
    without = [model for model in REPLY_MODELS if model not in {seen.model for seen in usable}]
    if best is None:
        return _fallback(situation, _why_not(outputs.get("generator")))
    # a reply made without the generator's candidate says why it had none (it lost fairly otherwise)
    reason = _why_not(outputs.get("generator")) if "generator" in without else None
    return Decision(
        best.text or "", SOURCE_OF_MODEL[best.model], best.model, reason, _why(best, usable, without, outputs)
    )


def _why(best: Seen, usable: list[Seen], without: list[str], outputs: Mapping[str, Seen]) -> str:
    """The choice in words: each candidate's quality, and why a model had none."""
    parts = [f"{seen.model} {seen.rank:.2f}" for seen in sorted(usable, key=lambda s: -s.rank)]
    parts += [f"{model} {_why_not(outputs.get(model))}" for model in without]
    return f"best quality: {best.model} ({'; '.join(parts)})"


def _canned(situation: Situation, intent: Seen | None, config: PolicyConfig) -> Decision | None:
    if intent is None or not intent.ok or not intent.in_scope or intent.label is None:
        return None
    if intent.label not in persona.CANNED_INTENTS:
        return None
    if (intent.confidence or 0.0) < config.canned_confidence:
        return None
    why = f"confident {intent.label} ({intent.confidence or 0.0:.2f})"
    return Decision(persona.canned_reply(intent.label, situation.seed), "canned", "intent", why=why)


def _fallback(situation: Situation, reason: str | None) -> Decision:
    line = FALLBACK_LINES[situation.seed % len(FALLBACK_LINES)]
    return Decision(line, "fallback", None, reason or "no_output", "no usable reply")


def _why_not(seen: Seen | None) -> str:
    """Why a reply model gave no usable candidate."""
    if seen is None:
        return "deadline"
    if seen.status == "skipped":
        return "degraded" if seen.reason in {"degraded"} else "skipped"
    if seen.status == "error":
        return "error"
    return "weak"


def _good(seen: Seen, situation: Situation) -> bool:
    """An ok output with a usable text that the selector did not rule out (quality 0: unsafe or empty)."""
    return seen.ok and _usable(seen.text, situation) and (seen.quality is None or seen.quality > 0.0)


def _usable(text: str | None, situation: Situation) -> bool:
    """Non-empty and not a repeat of one of the bot's recent replies."""
    if text is None or len(_words(text)) == 0:
        return False
    return _normal(text) not in {_normal(bot) for bot in situation.recent_bot}


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _normal(text: str) -> str:
    return " ".join(_words(text))


def seed_of(message_id: str) -> int:
    """A stable sampling seed per message: the same message always gets the same reply."""
    return zlib.crc32(message_id.encode())
