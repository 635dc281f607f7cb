"""Router agent: banter.turns + banter.outputs → banter.replies + banter.events.

Decode; decide (``streams.routing``); commit (``streams.delivery``: the state before its replies).
Timers answer at each deadline and resend what a restart restored unsent.
"""

from __future__ import annotations

from functools import partial

from schemas import ModelOutput, Turn
from streams import routing, tables, topics
from streams.app import agent, app, metrics, settings, timer
from streams.delivery import Delivery, Step
from streams.inputs import Record

TURNS = settings.topic("turns")
CONFIG = routing.RouterConfig.from_settings(settings)
DELIVERY = Delivery(tables.routing, topics.replies, topics.events, metrics, CONFIG, inputs=TURNS)
app.on_partitions_assigned.connect(DELIVERY.on_assigned)  # drops what moved to another worker


@agent("router", topics.router_inputs)
async def route_replies(records: list[Record]) -> None:
    """Each turn and output changes its conversation's state; the replies it allows are sent."""
    async with DELIVERY.step() as step:
        for record in records:
            await topics.inputs.guarded(record, "router", partial(_route, record, step))


async def _route(record: Record, step: Step) -> None:
    part, inputs = record.message.partition, topics.inputs
    if record.message.topic == TURNS:
        if turn := await inputs.decode(record, Turn, "router"):
            step.add(routing.on_turn(step.open(turn.conversation_id, part), turn, part, CONFIG, step.now))
    elif output := await inputs.decode(record, ModelOutput, "router"):
        step.add(routing.on_output(step.open(output.conversation_id, part), output, CONFIG, step.now, part))


@timer("router", interval=0.01)
async def enforce_deadlines() -> None:
    """Answer every message whose deadline has passed; emit events after their grace."""
    await DELIVERY.enforce_deadlines()


@timer("router", interval=1.0)
async def rescan_pending() -> None:
    """Resend replies a restart restored unsent; forget entries Kafka acked since."""
    await DELIVERY.rescan()
