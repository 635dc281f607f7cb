"""Responder agent: banter.turns → banter.outputs (nearest persona reply and its similarity)."""

from __future__ import annotations

from faust import Stream
from faust.types import EventT

from streams import gaps, topics
from streams.app import role_agent, settings
from streams.inference import Stage, dialogue_of, serve
from streams.services import model_service

RESPONDER = Stage("responder", "reply", dialogue_of)


@role_agent("responder", topics.turns)
async def retrieve_replies(stream: Stream) -> None:
    """banter.turns → banter.outputs, in micro-batches, inference off the event loop."""
    async for events in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(events)


async def _serve(events: list[EventT]) -> None:
    await serve(RESPONDER, model_service, events)


INPUTS = gaps.Inputs("responder", topics.turns.topics, _serve)
