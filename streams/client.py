"""A platform's side of banter: send messages, receive each reply exactly once.

Used by ``banter send``, ``banter chat`` and ``banter demo``. Replies are read
from ``banter.replies`` with no consumer group and de-duplicated by
``message_id``: a reply re-sent after a crash is delivered once.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas import Message, Reply, SchemaError, decode, encode
from streams import kafka
from streams.kafka import kafka_options, partitions_of
from streams.settings import Settings


def new_message(text: str, conversation_id: str, user_id: str = "cli-user", platform: str = "cli") -> Message:
    return Message(
        message_id=uuid.uuid4().hex,
        conversation_id=conversation_id,
        user_id=user_id,
        platform=platform,
        text=text,
        sent_at=time.time(),
    )


class OncePerMessage:
    """Remembers delivered message ids (the newest ``capacity``): a repeat is seen once."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def first(self, message_id: str) -> bool:
        """True the first time ``message_id`` is offered, False after."""
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True


WARMUP_ASK_S = 15.0


class Client:
    """Sends messages and hands back their replies, each message_id once."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=0)
        self._consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._once = OncePerMessage()
        self.duplicates = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await kafka.start(self._producer, self.settings)  # a refusal says which setting to fix
        await kafka.start(self._consumer, self.settings)
        topic = self.settings.topic("replies")
        partitions = await partitions_of(self._consumer, topic)
        self._consumer.assign([TopicPartition(topic, p) for p in partitions])
        await self._consumer.seek_to_end()
        for tp in self._consumer.assignment():  # resolve positions now, before anything is sent
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        await self._consumer.stop()
        await self._producer.stop()

    async def send(self, message: Message) -> asyncio.Future[Reply]:
        """Produce ``message``; the future resolves with its reply."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[message.message_id] = future
        await self._producer.send_and_wait(
            self.settings.topic("messages"), encode(message), key=message.conversation_id.encode()
        )
        return future

    async def ask(self, message: Message, timeout_s: float = 30.0) -> Reply:
        return await asyncio.wait_for(await self.send(message), timeout_s)

    async def wait_ready(self, timeout_s: float = 240.0) -> Reply:
        """Wait for the worker's models (its /ready page), then for a model's reply."""
        deadline = time.monotonic() + timeout_s
        url = f"http://{self.settings.web_host}:{self.settings.web_port}/ready"
        while not await asyncio.to_thread(answers_200, url):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not say ready within {timeout_s:.0f} s")
            await asyncio.sleep(0.5)
        return await self.wait_warm(max(1.0, deadline - time.monotonic()))

    async def wait_warm(self, timeout_s: float = 240.0) -> Reply:
        """Send greetings until one is answered by a model, not the fallback line.

        A worker that has just started answers at the deadline while its models
        load; only once a model answers is it warm. Each greeting waits at most
        ``WARMUP_ASK_S``, so one reply that never comes does not use up the wait.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no reply from a model within {timeout_s:.0f} s")
            greeting = new_message("hi there!", f"warmup-{uuid.uuid4().hex[:8]}", "warmup")
            try:
                reply = await self.ask(greeting, min(left, WARMUP_ASK_S))
            except TimeoutError:
                self._waiting.pop(greeting.message_id, None)
                continue
            if reply.source != "fallback":
                return reply
            await asyncio.sleep(0.5)

    async def _read(self) -> None:
        async for record in self._consumer:
            try:
                reply = decode(record.value, Reply)
            except SchemaError:
                continue
            self._deliver(reply)

    def _deliver(self, reply: Reply) -> None:
        if not self._once.first(reply.message_id):
            self.duplicates += 1
            return
        future = self._waiting.pop(reply.message_id, None)
        if future is not None and not future.done():
            future.set_result(reply)


def answers_200(url: str) -> bool:
    """True when ``url`` answers 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[Client]:
    client = Client(settings)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()
