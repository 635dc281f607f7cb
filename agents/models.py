"""Model agents: banter.turns → banter.outputs, in micro-batches, inference off the event loop.

* ``understand``: one embedding per message serves the intent head and the
  retrieval responder (``models.understand``); its one ``understanding`` output
  is read by the router as the ``intent`` and ``responder`` candidates. It never
  skips a message for time: understanding costs a few milliseconds, and a
  message already late is still answered from it.
* ``generator``: a reply from the chat model, rated by the selector. It degrades
  to cheaper settings, then to skipping, when its messages would miss their
  deadlines, and recovers with hysteresis (``models.latency.Degrader``).

How a batch is served (decode, plan, run, emit) is ``streams.inference``.
"""

from __future__ import annotations

from typing import Any

from models.latency import Degrader, LatencyTracker
from models.types import Proposal
from models.understand import Understanding
from streams import topics
from streams.app import agent, metrics, models, settings
from streams.inference import Payload, Serving, Stage, dialogue_of, serve
from streams.inputs import Record


async def _send(key: bytes, value: bytes) -> Any:
    return await topics.outputs.send(key=key, value=value)


SERVING = Serving(models, metrics, topics.inputs, _send)


def _understood(understood: Understanding) -> Payload:
    intent, reply = understood.intent, understood.reply
    return {
        "label": intent.label,
        "confidence": float(intent.confidence),
        "in_scope": bool(intent.in_scope),
        "text": reply.text,
        "score": float(reply.score),
        "quality": reply.quality,
    }


def _generated(reply: Proposal) -> Payload:
    return {"text": reply.text, "score": float(reply.score), "quality": reply.quality}


def _tracker() -> LatencyTracker:
    return LatencyTracker(quantile=settings.latency_quantile)


UNDERSTAND = Stage("understand", "understanding", ("intent", "responder"), dialogue_of, _understood, tracker=_tracker())
GENERATOR = Stage(
    "generator",
    "reply",
    ("generator",),
    dialogue_of,
    _generated,
    sheds=True,
    tracker=_tracker(),
    degrader=Degrader(),
    max_new_tokens=settings.generator_max_new_tokens,
)


@agent("understand", topics.turns)
async def understand_turns(records: list[Record]) -> None:
    """banter.turns → an understanding (intent and the nearest persona replies) per message."""
    await serve(UNDERSTAND, SERVING, records)


@agent("generator", topics.turns)
async def generate_replies(records: list[Record]) -> None:
    """banter.turns → a generated reply per message, unless it would miss the deadline."""
    await serve(GENERATOR, SERVING, records)
