"""Intent agent: banter.turns → banter.outputs (label, confidence, in scope or not)."""

from __future__ import annotations

from faust import Stream
from faust.types import EventT

from schemas import Turn
from streams import gaps, topics
from streams.app import role_agent, settings
from streams.inference import Stage, serve
from streams.services import model_service


def _text(turn: Turn) -> str:
    return turn.text


INTENT = Stage("intent", "intent", _text)


@role_agent("intent", topics.turns)
async def detect_intents(stream: Stream) -> None:
    """banter.turns → banter.outputs, in micro-batches, inference off the event loop."""
    async for events in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(events)


async def _serve(events: list[EventT]) -> None:
    await serve(INTENT, model_service, events)


INPUTS = gaps.Inputs("intent", topics.turns.topics, _serve)
