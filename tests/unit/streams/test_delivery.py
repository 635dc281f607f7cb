"""The router's crash ordering without Kafka: a reply is sent only once the state recording it is
in the changelog, an entry is forgotten only once Kafka acknowledged its reply, and a reply a
restart restored unsent is sent again, the same. The table and topics are fakes that log calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from models import persona
from models.policy import PolicyConfig
from schemas import Event, ModelOutput, Reply, Turn, decode
from streams import routing
from streams.delivery import Delivery
from streams.metrics import Metrics

CANNED = sorted(persona.CANNED_INTENTS)[0]


class Log(list[tuple[str, Any]]):
    """What the fakes were asked to do, in order."""


class FakeTable:
    """A table's in-memory data and its changelog writes, each acknowledged when the test says."""

    def __init__(self, log: Log) -> None:
        self.data: dict[bytes, Any] = {}
        self.log = log
        self.pending: list[asyncio.Future[None]] = []

    def send_changelog(self, partition: int, key: bytes, value: Any) -> asyncio.Future[None]:
        self.log.append(("changelog", routing.stored(value)))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(ack)
        return ack


class FakeTopic:
    def __init__(self, name: str, log: Log) -> None:
        self.name, self.log = name, log
        self.acks: list[asyncio.Future[None]] = []

    async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.log.append((self.name, value))
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acks.append(ack)
        return ack


def turn() -> Turn:
    now = time.time()
    return Turn("m1", "c1", "u1", "web", "what's the weather", now, 1, [], 0.0, now, now + 1.0)


def output(model: str, **fields: Any) -> ModelOutput:
    kind = "intent" if model == "intent" else "reply"
    return ModelOutput("m1", "c1", model, "v1", kind, "ok", 1.0, time.time(), **fields)


def canned() -> ModelOutput:
    return output("intent", label=CANNED, confidence=0.99, in_scope=True)


class World:
    def __init__(self, table: FakeTable | None = None) -> None:
        self.log = Log()
        self.table = table or FakeTable(self.log)
        self.table.log = self.log
        self.replies, self.events = FakeTopic("reply", self.log), FakeTopic("event", self.log)
        config = routing.RouterConfig(PolicyConfig(accept_now=0.9), grace_s=0.0)
        metrics = Metrics(CollectorRegistry())
        self.delivery = Delivery(self.table, self.replies, self.events, metrics, config)  # type: ignore[arg-type]

    async def route(self, *records: Turn | ModelOutput) -> None:
        async with self.delivery.step() as step:
            for record in records:
                conv = step.open("c1", 0)
                if isinstance(record, Turn):
                    step.add(routing.on_turn(conv, record, 0, self.delivery.config, step.now))
                else:
                    step.add(routing.on_output(conv, record, self.delivery.config, step.now, 0))

    def sent(self, kind: str) -> list[bytes]:
        return [value for what, value in self.log if what == kind]


async def _acked_step(world: World, *records: Turn | ModelOutput) -> None:
    """One router step whose changelog writes Kafka acknowledges."""
    stepping = asyncio.create_task(world.route(*records))
    await asyncio.sleep(0.01)
    await _acknowledge(world.table.pending)
    await stepping


async def _acknowledge(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def test_a_reply_is_sent_only_after_the_state_recording_it_is_in_the_changelog() -> None:
    async def run() -> None:
        world = World()
        stepping = asyncio.create_task(world.route(turn(), canned()))
        await asyncio.sleep(0.01)
        assert world.sent("changelog") and not world.sent("reply")  # waiting for the changelog's ack
        recorded = world.log[-1][1].pending["m1"]
        assert recorded.reply is not None  # the state written holds the reply about to be sent
        await _acknowledge(world.table.pending)
        await stepping
        (reply,) = world.sent("reply")
        assert decode(reply, Reply).text == recorded.reply.text

    asyncio.run(asyncio.wait_for(run(), 10))


def test_an_entry_is_forgotten_only_once_kafka_acknowledged_its_reply() -> None:
    async def run() -> None:
        world = World()
        await _acked_step(world, turn(), canned())
        outputs = (output("responder", text="hm", score=0.5), output("generator", text="eh", score=0.1))
        await _acked_step(world, *outputs)
        assert not world.sent("event") and "m1" in world.delivery.stored("c1").pending  # reply not acked
        await _acknowledge(world.replies.acks)
        await world.delivery.rescan()  # finds the newly acked reply, marks it, releases the event
        (event,) = world.sent("event")
        assert decode(event, Event).message_id == "m1"
        assert world.delivery.stored("c1").pending == {}

    asyncio.run(asyncio.wait_for(run(), 10))


def test_a_reply_restored_unsent_after_a_restart_is_sent_again_the_same() -> None:
    async def run() -> None:
        world = World()
        await _acked_step(world, turn(), canned())
        (first,) = world.sent("reply")
        restarted = World()  # a new process: the state restored from the changelog, as plain data
        restarted.table.data = dict(world.table.data)  # what the changelog holds: plain data
        rescanning = asyncio.create_task(restarted.delivery.rescan())
        await asyncio.sleep(0.01)
        await _acknowledge(restarted.table.pending)
        await rescanning
        (again,) = restarted.sent("reply")
        assert decode(again, Reply) == decode(first, Reply)

    asyncio.run(asyncio.wait_for(run(), 10))


def test_an_idle_conversation_with_nothing_pending_is_forgotten_with_a_tombstone() -> None:
    async def run() -> None:
        world = World()
        world.table.data[b"c1"] = routing.Conversation(partition=3, active_at=time.time() - 10_000)
        world.table.data[b"c2"] = routing.Conversation(partition=3, active_at=time.time())
        await world.delivery.rescan()
        assert list(world.table.data) == [b"c2"]
        assert world.log == [("changelog", None)]  # the tombstone: a restart does not read c1 back

    asyncio.run(asyncio.wait_for(run(), 10))


def test_after_a_restart_a_restored_unsent_reply_goes_out_before_a_later_turns_reply() -> None:
    """kill -9 after a reply was handed to the producer but before Kafka acked it: the restarted router's
    first step sends that reply before the next turn's, not a rescan tick (up to a second) later."""

    def numbered(mid: str, number: int) -> Turn:
        now = time.time()
        return Turn(mid, "c1", "u1", "web", "what's the weather", now, number, [], 0.0, now, now + 1.0)

    def canned_for(mid: str) -> ModelOutput:
        fields = {"label": CANNED, "confidence": 0.99, "in_scope": True}
        return ModelOutput(mid, "c1", "intent", "v1", "intent", "ok", 1.0, time.time(), **fields)

    async def run() -> None:
        world = World()
        stepping = asyncio.create_task(world.route(numbered("m1", 1), canned_for("m1"), numbered("m2", 2)))
        await asyncio.sleep(0.01)
        await _acknowledge(world.table.pending)
        await stepping  # m1's reply handed to the producer, never acked: the process dies here
        restarted = World()
        restarted.table.data = dict(world.table.data)  # what the changelog holds: plain data
        stepping = asyncio.create_task(restarted.route(canned_for("m2")))  # its first step, before any rescan
        await asyncio.sleep(0.01)
        await _acknowledge(restarted.table.pending)
        await stepping
        assert [decode(value, Reply).message_id for value in restarted.sent("reply")] == ["m1", "m2"]

    asyncio.run(asyncio.wait_for(run(), 10))


def test_after_a_rebalance_the_conversations_of_partitions_moved_away_leave_memory_only() -> None:
    """Their new owner restores them from the changelog and answers them; kept here, this worker's deadline
    timer would answer them a second time, differently (the rebalance test caught it)."""
    world = World()
    world.delivery.inputs = "t.turns"
    world.table.data = {b"c1": routing.to_stored(routing.Conversation(partition=1)), b"c2": {"partition": 2}}
    assert world.delivery.stored("c1") is not None and world.delivery.stored("c2") is not None  # now in memory
    assigned = [TP("t.turns", 2), TP("t.x", 1)]
    world.delivery.on_assigned(None, assigned)
    assert list(world.delivery.memory) == [b"c2"] and list(world.table.data) == [b"c2"]
    assert world.log == []  # nothing written: the changelog still holds c1
