"""A record sent to a topic never loses that topic's metadata (an aiokafka 0.14 workaround).

An ``AIOKafkaClient`` that tracks no topic refreshes the metadata of every topic
in the cluster. Its first ``add_topic`` (a send to a topic it has not seen yet, such
as a table's changelog created after the producer started) narrows every later
refresh to the topics added, and each refresh replaces the whole cluster metadata:
every topic the client knew without having added it drops out. A record already in
the producer's buffer for such a topic then has no partition leader, and the
sender's refreshes never ask for that topic again. The record waits until the
producer's request timeout (faust's: 20 minutes) unless a later send to the same
topic adds it back.

The router waits for its state's changelog ack before it sends anything else, so
nothing did: now and then (2 of 18 runs of the broker-fault test) its ``routing``
changelog write was caught that way at the start of the load, and the worker stopped
answering for good with nothing logged (its producer tracked the other agents'
topics, not ``routing-changelog``, ``replies`` or ``events``).

``install`` makes a client that tracks nothing keep tracking every topic it knows
when it adds its first one, so a known topic never drops out. Once aiokafka keeps
the topics of buffered records in its metadata (as the Java producer does), this
module and its ``install()`` call in ``streams.kafka`` can go.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaClient

_add_topic = AIOKafkaClient.add_topic


def add_topic_keeping_known(client: Any, topic: str) -> asyncio.Future[bool]:
    """``AIOKafkaClient.add_topic``, except that a client tracking no topic first tracks those it knows."""
    if not client._topics:  # tracking nothing means refreshing every topic: keep those known now
        client._topics.update(client.cluster.topics())
    return _add_topic(client, topic)


def install() -> None:
    """Every aiokafka client of this process (faust's producer among them) keeps the topics it knows."""
    AIOKafkaClient.add_topic = add_topic_keeping_known
