"""banter's topics (DESIGN.md's table), all keyed by conversation and equally partitioned.

Values travel as raw bytes: agents decode and validate them in our own code, so
that bad bytes reach the dead-letter topic instead of crashing faust's decoder.
"""

from __future__ import annotations

from faust.types import TopicT

from streams.app import app, settings


def _topic(name: str) -> TopicT:
    return app.topic(
        settings.topic(name),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        replicas=settings.replication,
    )


messages = _topic("messages")
turns = _topic("turns")
outputs = _topic("outputs")
replies = _topic("replies")
events = _topic("events")
deadletter = _topic("deadletter")

ALL = (messages, turns, outputs, replies, events, deadletter)

# Multi-topic channels for agents that join streams (same partition numbers, same keys).
context_inputs = app.topic(
    messages.get_topic_name(), replies.get_topic_name(),
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
)  # fmt: skip
router_inputs = app.topic(
    turns.get_topic_name(), outputs.get_topic_name(),
    key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
)  # fmt: skip
