"""What the gateway remembers, bounded: messages with their replies and events, recent
conversation turns, and a token bucket per caller.

Plain data structures with no I/O, filled by ``streams.gateway_kafka`` and read by
``streams.gateway``; each is an LRU of fixed capacity, so memory stays bounded
however many conversations pass through.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas import Event, Message, Reply
from schemas.http import ConversationTurn, MessageStatus

Fingerprint = tuple[str, str, str, str]


def fingerprint(message: Message) -> Fingerprint:
    """What must match for a second POST with one message_id to be a retry of the first."""
    return (message.conversation_id, message.user_id, message.platform, message.text)


class Conflict(Exception):
    """A message_id already known with a different body."""


@dataclass
class Entry:
    """One message: known from a POST or from banter.messages; answered once its reply is read."""

    message_id: str
    conversation_id: str
    platform: str
    fingerprint: Fingerprint | None = None
    reply: Reply | None = None
    event: Event | None = None
    push: bool = False  # answered 202 here: the reply goes to the platform's webhook
    produced: asyncio.Future[None] | None = None  # set while this gateway produces it
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    def status(self) -> MessageStatus:
        if self.reply is None:
            return MessageStatus(self.message_id, self.conversation_id, "pending", None, self.event)
        return MessageStatus(self.message_id, self.conversation_id, "answered", self.reply, self.event)


class Ledger:
    """The newest ``capacity`` messages by message_id."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, message_id: str) -> Entry | None:
        return self._entries.get(message_id)

    def admit(self, message: Message) -> tuple[Entry, bool]:
        """The entry for a POSTed message and whether it is new (to produce); Conflict if the id is taken."""
        entry = self._entries.get(message.message_id)
        if entry is None:
            entry = self._add(Entry(message.message_id, message.conversation_id, message.platform))
            entry.fingerprint = fingerprint(message)
            return entry, True
        if entry.fingerprint is not None and entry.fingerprint != fingerprint(message):
            raise Conflict(message.message_id)
        return entry, False

    def forget(self, message_id: str) -> None:
        self._entries.pop(message_id, None)

    def saw_message(self, message: Message) -> None:
        entry = self._entries.get(message.message_id)
        if entry is None:
            entry = self._add(Entry(message.message_id, message.conversation_id, message.platform))
        if entry.fingerprint is None:
            entry.fingerprint = fingerprint(message)

    def saw_reply(self, reply: Reply) -> Entry | None:
        """Record a reply; the entry when this is its first reply (a repeat after a crash is ignored)."""
        entry = self._entries.get(reply.message_id)
        if entry is None:
            entry = self._add(Entry(reply.message_id, reply.conversation_id, reply.platform))
        if entry.reply is not None:
            return None
        entry.reply = reply
        entry.answered.set()
        return entry

    def saw_event(self, event: Event) -> None:
        entry = self._entries.get(event.message_id)
        if entry is None:
            entry = self._add(Entry(event.message_id, event.conversation_id, event.platform))
        entry.event = entry.event or event

    def _add(self, entry: Entry) -> Entry:
        self._entries[entry.message_id] = entry
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return entry


@dataclass(frozen=True)
class SeenTurn:
    turn: ConversationTurn
    platform: str


class Conversations:
    """The last ``turns`` turns of the newest ``capacity`` conversations."""

    def __init__(self, capacity: int, turns: int) -> None:
        self.capacity, self.turns = capacity, turns
        self._conversations: OrderedDict[str, deque[SeenTurn]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._conversations)

    def add(self, conversation_id: str, platform: str, turn: ConversationTurn) -> None:
        turns = self._conversations.get(conversation_id)
        if turns is None:
            turns = self._conversations[conversation_id] = deque(maxlen=self.turns)
            while len(self._conversations) > self.capacity:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(conversation_id)
        if any(seen.turn.message_id == turn.message_id and seen.turn.speaker == turn.speaker for seen in turns):
            return  # a record read twice (a producer's retry, a reply repeated after a crash)
        turns.append(SeenTurn(turn, platform))

    def recent(self, conversation_id: str, platform: str | None) -> list[ConversationTurn]:
        """Oldest first; only the platform's turns when ``platform`` is given."""
        seen = self._conversations.get(conversation_id, ())
        mine = [s.turn for s in seen if platform is None or s.platform == platform]
        return sorted(mine, key=lambda turn: (turn.at, turn.speaker == "bot"))


class TokenBucket:
    """``rate`` requests per second on average, ``burst`` at once."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self._clock = rate, float(burst), clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> float:
        """0 when a request may pass, else the seconds until one may."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate if self.rate > 0 else float("inf")


class RateLimits:
    """One bucket per caller (a platform's token), created on first use, bounded in number."""

    def __init__(self, rate: float, burst: int, capacity: int = 10_000) -> None:
        self.rate, self.burst, self.capacity = rate, burst, capacity
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def take(self, caller: str) -> float:
        bucket = self._buckets.get(caller)
        if bucket is None:
            bucket = self._buckets[caller] = TokenBucket(self.rate, self.burst)
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        return bucket.take()
