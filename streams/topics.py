"""banter's topics (``streams.kafka.TOPICS``), all keyed by conversation and equally partitioned,
and the dead-letter sender every agent's ``Inputs`` uses.

Values travel as raw bytes: agents decode and validate them in our own code, so
that bad bytes reach the dead-letter topic instead of crashing faust's decoder.
"""

from __future__ import annotations

from faust.types import TopicT

from schemas import DeadLetter, encode
from streams.app import app, metrics, settings
from streams.inputs import Inputs
from streams.kafka import TOPICS


def _topic(*names: str) -> TopicT:
    return app.topic(
        *(settings.topic(name) for name in names),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        replicas=settings.replication,
    )


ALL = {name: _topic(name) for name in TOPICS}
messages, turns, outputs = ALL["messages"], ALL["turns"], ALL["outputs"]
replies, events, deadletter = ALL["replies"], ALL["events"], ALL["deadletter"]

# Multi-topic channels for agents that join streams (same partition numbers, same keys).
context_inputs = _topic("messages", "replies")
router_inputs = _topic("turns", "outputs")


async def _send_letter(key: bytes | None, letter: DeadLetter) -> None:
    await deadletter.send(key=key, value=encode(letter))


inputs = Inputs(_send_letter, metrics)
"""Decoding and guarding for every agent; bad records go to ``banter.deadletter``."""
