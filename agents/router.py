"""Router agent: banter.turns + banter.outputs → banter.replies + banter.events.

Decode, decide (``streams.routing``: each turn joined with its outputs, answered as soon as
the policy allows), commit (``streams.delivery``: state before replies, forgotten after acks).
A timer enforces deadlines, so a reply never waits for the next message to arrive.
"""

from __future__ import annotations

from functools import partial

from schemas import ModelOutput, Turn
from streams import routing, tables, topics
from streams.app import agent, metrics, settings, timer
from streams.delivery import Delivery, Step
from streams.inputs import Record

TURNS = settings.topic("turns")
CONFIG = routing.RouterConfig.from_settings(settings)
DELIVERY = Delivery(tables.routing, topics.replies, topics.events, metrics, CONFIG)


@agent("router", topics.router_inputs)
async def route_replies(records: list[Record]) -> None:
    """Each turn and output changes its conversation's state; the replies it allows are sent."""
    async with DELIVERY.step() as step:
        for record in records:
            await topics.inputs.guarded(record, "router", partial(_route, record, step))


async def _route(record: Record, step: Step) -> None:
    partition, inputs = record.message.partition, topics.inputs
    if record.message.topic == TURNS:
        if turn := await inputs.decode(record, Turn, "router"):
            conv = step.open(turn.conversation_id, partition)
            step.add(routing.on_turn(conv, turn, partition, CONFIG, step.now))
    elif output := await inputs.decode(record, ModelOutput, "router"):
        conv = step.open(output.conversation_id, partition)
        step.add(routing.on_output(conv, output, CONFIG, step.now, partition))


@timer("router", interval=0.01)
async def enforce_deadlines() -> None:
    """Answer every message whose deadline has passed; emit events after their grace."""
    await DELIVERY.enforce_deadlines()


@timer("router", interval=1.0)
async def rescan_pending() -> None:
    """Resend replies a restart restored unsent; forget entries Kafka acked since."""
    await DELIVERY.rescan()
