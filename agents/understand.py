"""Understand agent: banter.turns → banter.outputs (the intent and the nearest persona reply).

One embedding per message serves both the intent head and the retrieval
responder (``models.understand``); each message yields one ``understanding``
output holding both answers, which the router reads as the ``intent`` and
``responder`` candidates. It never skips a message for time: understanding costs
a few milliseconds, and a message already late is still answered from it.
"""

from __future__ import annotations

from faust import Stream
from faust.types import EventT

from models.understand import Understanding
from streams import gaps, topics
from streams.app import role_agent, settings
from streams.inference import Payload, Stage, dialogue_of, serve
from streams.services import model_service


def _payload(understood: Understanding) -> Payload:
    intent, reply = understood.intent, understood.reply
    return {"label": intent.label, "confidence": float(intent.confidence), "in_scope": bool(intent.in_scope),
            "text": reply.text, "score": float(reply.score), "quality": reply.quality}  # fmt: skip


UNDERSTAND = Stage("understand", "understanding", ("intent", "responder"), dialogue_of, _payload)


@role_agent("understand", topics.turns)
async def understand_turns(stream: Stream) -> None:
    """banter.turns → banter.outputs, in micro-batches, inference off the event loop."""
    async for events in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(events)


async def _serve(events: list[EventT]) -> None:
    await serve(UNDERSTAND, model_service, events)


INPUTS = gaps.Inputs("understand", topics.turns.topics, _serve)
