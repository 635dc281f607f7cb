"""The gateway's Kafka side: one producer to banter.messages, and one consumer (no group)
of banter.messages, banter.replies and banter.events that fills the ledger and the
conversations.

Every gateway reads every partition, so any gateway answers GET for any message
of the last ``BANTER_GATEWAY_LOOKBACK_S`` seconds and after, and a retry that
lands on another gateway is still not produced twice once that one has read it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import Event, Message, Reply, SchemaError, decode, encode
from schemas.http import ConversationTurn
from streams import kafka
from streams.gateway_state import Conversations, Entry, Ledger
from streams.kafka import kafka_options, partitions_of
from streams.settings import Settings

log = logging.getLogger(__name__)

READ = ("messages", "replies", "events")


class Relay:
    """Produces messages; reads what happens to them into ``ledger`` and ``conversations``."""

    def __init__(
        self, settings: Settings, ledger: Ledger, conversations: Conversations, on_reply: Callable[[Entry], None]
    ) -> None:
        self.settings, self.ledger, self.conversations, self.on_reply = settings, ledger, conversations, on_reply
        self._producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=0, enable_idempotence=True)
        self._consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
        self._handlers: dict[str, Callable[[Any], None]] = {
            settings.topic("messages"): self._message,
            settings.topic("replies"): self._reply,
            settings.topic("events"): self._event,
        }
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await kafka.start(self._producer, self.settings)  # a refusal says which setting to fix
        await kafka.start(self._consumer, self.settings)
        assignment = []
        for name in READ:
            topic = self.settings.topic(name)
            assignment += [TopicPartition(topic, p) for p in await partitions_of(self._consumer, topic)]
        self._consumer.assign(assignment)
        await self._seek_back(assignment)
        self._reader = asyncio.create_task(self._read())

    async def _seek_back(self, assignment: list[TopicPartition]) -> None:
        """Start ``lookback_s`` ago (at the end where nothing is that recent)."""
        since_ms = int((time.time() - self.settings.gateway_lookback_s) * 1000)
        offsets = await self._consumer.offsets_for_times({tp: since_ms for tp in assignment})
        ends = await self._consumer.end_offsets(assignment)
        for tp in assignment:
            found = offsets.get(tp)
            self._consumer.seek(tp, found.offset if found is not None else ends[tp])

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._consumer.stop()
        await self._producer.stop()

    async def produce(self, message: Message) -> None:
        """Produce to banter.messages keyed by conversation_id; returns once Kafka acked it."""
        await self._producer.send_and_wait(
            self.settings.topic("messages"), encode(message), key=message.conversation_id.encode()
        )

    async def _read(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=2000)
            for tp, records in batches.items():
                handle = self._handlers[tp.topic]
                for record in records:
                    handle(record)

    def _message(self, record: Any) -> None:
        message = _decode(record.value, Message)
        if message is None:
            return  # the context agent dead-letters it
        self.ledger.saw_message(message)
        turn = ConversationTurn("user", message.text, message.message_id, record.timestamp / 1000)
        self.conversations.add(message.conversation_id, message.platform, turn)

    def _reply(self, record: Any) -> None:
        reply = _decode(record.value, Reply)
        if reply is None:
            return
        turn = ConversationTurn("bot", reply.text, reply.message_id, record.timestamp / 1000, reply.source)
        self.conversations.add(reply.conversation_id, reply.platform, turn)
        entry = self.ledger.saw_reply(reply)
        if entry is not None:
            self.on_reply(entry)

    def _event(self, record: Any) -> None:
        event = _decode(record.value, Event)
        if event is not None:
            self.ledger.saw_event(event)


def _decode(value: bytes | None, cls: type[Any]) -> Any:
    try:
        return decode(value, cls)
    except SchemaError:
        return None
