"""Analytics agent: banter.events → per-conversation stats, each message counted once.

``GET /analytics`` on the worker's web port sums the conversations this worker holds.
"""

from __future__ import annotations

from faust import Stream
from faust.types import EventT
from faust.web import Request, Response, View

from models import analytics
from schemas import Event
from streams import gaps, tables, topics
from streams.app import app, role_agent, settings
from streams.pipeline import decode_event


@role_agent("analytics", topics.events)
async def count_events(stream: Stream) -> None:
    """banter.events → the analytics table (love declarations, sources, intents, fallbacks)."""
    async for messages in stream.take_events(settings.max_batch, within=settings.batch_wait_ms / 1000):
        await INPUTS.take(messages)


async def _count(messages: list[EventT]) -> None:
    """Each conversation the batch counted is written to the changelog once, after the batch."""
    touched: dict[bytes, tuple[analytics.Stats, int]] = {}
    for message in messages:
        event = await decode_event(message, Event, "analytics")
        if event is None:
            continue
        key = event.conversation_id.encode()
        stats = touched[key][0] if key in touched else tables.analytics.data.get(key) or analytics.new_stats()
        if analytics.count(stats, event.message_id, event.source, event.intent, event.fallback_reason, event.flags):
            touched[key] = (stats, message.message.partition)
    for key, (stats, partition) in touched.items():
        await tables.persist(tables.analytics, key, stats, partition, durable=False)


INPUTS = gaps.Inputs("analytics", topics.events.topics, _count)


@app.page("/analytics")
async def analytics_totals(web: View, request: Request) -> Response:
    """Totals over the conversations whose partitions this worker holds."""
    return web.json(analytics.total(stats for stats in tables.analytics.data.values() if stats))
