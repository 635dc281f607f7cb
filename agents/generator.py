"""Generator agent: banter.turns → banter.outputs (a reply from the chat model, rated by the selector).

It degrades to cheaper settings, then to skipping, when its messages would miss
their deadlines, and recovers with hysteresis (models.latency.Degrader).
"""

from __future__ import annotations

import time

from faust import Stream
from faust.types import EventT

from models.latency import Degrader
from models.types import Candidate
from streams import gaps, topics
from streams.app import role_agent, settings
from streams.inference import Payload, Stage, dialogue_of, serve
from streams.services import model_service


def _injected_fault() -> None:
    """Test knobs from settings: extra latency, or a generator that raises."""
    if settings.generator_delay_ms > 0:
        time.sleep(settings.generator_delay_ms / 1000)
    if settings.generator_fault == "raise":
        raise RuntimeError("injected generator fault (BANTER_GENERATOR_FAULT=raise)")


def _payload(reply: Candidate) -> Payload:
    return {"text": reply.text, "score": float(reply.score), "quality": reply.quality}


GENERATOR = Stage("generator", "reply", ("generator",), dialogue_of, _payload, sheds=True, degrader=Degrader(),
                  fault=_injected_fault)  # fmt: skip


@role_agent("generator", topics.turns)
async def generate_replies(stream: Stream) -> None:
    """banter.turns → banter.outputs, in micro-batches, inference off the event loop."""
    async for events in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(events)


async def _serve(events: list[EventT]) -> None:
    await serve(GENERATOR, model_service, events)


INPUTS = gaps.Inputs("generator", topics.turns.topics, _serve)
