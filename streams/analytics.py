"""Analytics over every partition: read the window records from the analytics table's changelog.

Each worker's analytics agent keeps the windows of the ``banter.events`` partitions it holds in the
changelog-backed ``analytics_windows`` table (``models.analytics``). The changelog holds the latest
record of every partition, whichever worker wrote it, so a reader that takes the newest value per key
(a tombstone deletes it) sees the windows of all partitions: that is how ``banter analytics`` and
every worker's ``/analytics`` page give totals across workers; the analytics agent reads the records of
the partitions it is handed the same way (``load``). No faust here: the CLI uses it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from models import analytics
from streams.kafka import kafka_options
from streams.settings import Settings

TABLE = "analytics_windows"
BARS = " ▁▂▃▄▅▆▇█"


def changelog_topic(settings: Settings) -> str:
    """The changelog faust keeps for the table (``{app id}-{table}-changelog``)."""
    return f"{settings.app_id}-{TABLE}-changelog"


class Windows:
    """The newest window record of every partition, kept up to date by reading the changelog on.

    Lenient, for pages and the CLI: before the changelog exists (the first worker creates it as it
    starts) or while its partitions are not known yet, a refresh reads nothing and the report is
    empty or partial; the next refresh looks again.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records: dict[str, analytics.Record] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._lock = asyncio.Lock()

    async def refresh(self, timeout_s: float = 10.0) -> dict[str, analytics.Record]:
        """Read what the changelog gained since the last call, up to its end now; returns the records."""
        async with self._lock:
            consumer = self._consumer or await self._start()
            topic = changelog_topic(self.settings)
            known = consumer.partitions_for_topic(topic) or await _look_up(consumer, topic)
            if known != {tp.partition for tp in consumer.assignment()}:
                await _assign(consumer, topic, known)  # first sight of the topic, or it grew: read it all again
                self.records.clear()
            await _read_to_end(consumer, lambda key, value: _apply(self.records, key, value, False), timeout_s)
            return self.records

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    async def _start(self) -> AIOKafkaConsumer:
        self._consumer = await _consumer(self.settings)
        return self._consumer


async def load(settings: Settings, partitions: Collection[int], timeout_s: float = 30.0) -> dict[str, analytics.Record]:
    """The window records of ``partitions``, ids included: what the analytics agent starts from when
    it is handed those partitions (the changelog partition is the ``banter.events`` partition).

    Strict where ``Windows`` is lenient: a partition the changelog does not show yet is looked for
    again until ``timeout_s``, then an error, never taken for empty: the agent would write over its
    records and lose what another worker counted.
    """
    topic, deadline = changelog_topic(settings), time.monotonic() + timeout_s
    consumer = await _consumer(settings)
    try:
        while not set(partitions) <= await _look_up(consumer, topic):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} shows no partitions {sorted(partitions)} after {timeout_s:.0f} s")
            await asyncio.sleep(0.5)
        await _assign(consumer, topic, partitions)
        records: dict[str, analytics.Record] = {}
        await _read_to_end(
            consumer, lambda key, value: _apply(records, key, value, True), max(deadline - time.monotonic(), 1.0)
        )
        return records
    finally:
        await consumer.stop()


async def _consumer(settings: Settings) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    return consumer


async def _look_up(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The topic's partitions after a fresh metadata request (none if it does not exist, or not yet)."""
    await consumer._client.force_metadata_update()
    return set(consumer.partitions_for_topic(topic) or ())


async def _assign(consumer: AIOKafkaConsumer, topic: str, partitions: Collection[int]) -> None:
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    if tps:  # aiokafka refuses to seek with nothing assigned
        await consumer.seek_to_beginning(*tps)


async def _read_to_end(
    consumer: AIOKafkaConsumer, apply: Callable[[bytes | None, bytes | None], None], timeout_s: float
) -> None:
    """Read the assigned partitions up to their ends as of now (records written later: the next call).

    ``timeout_s`` bounds the whole read, aiokafka's own waits included: ``position()`` waits without
    end for a partition whose offset reset has not completed, and ``end_offsets`` up to the request
    timeout (40 s). A deadline checked only between fetches let a read outlive it, silently: the
    agent's ``load`` then held its input lock, and a page its reader's lock, for as long.
    """
    assigned = list(consumer.assignment())
    try:
        async with asyncio.timeout(timeout_s):
            ends = await consumer.end_offsets(assigned) if assigned else {}
            while await _behind(consumer, ends):
                for records in (await consumer.getmany(timeout_ms=200, max_records=2000)).values():
                    for record in records:
                        apply(record.key, record.value)
    except TimeoutError:
        raise TimeoutError(f"reading {assigned[0].topic} took over {timeout_s:.0f} s") from None


def _apply(records: dict[str, analytics.Record], key: bytes | None, value: bytes | None, keep_ids: bool) -> None:
    """One changelog record: the newest value of its key, or its deletion (a tombstone)."""
    if key is None:
        return
    name = key.decode()
    if value is None:
        records.pop(name, None)
        return
    record = orjson.loads(value)
    if not keep_ids:
        record.pop("ids", None)  # the agent's de-duplication memory: readers need only the counts
    records[name] = record


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return True
    return False


async def read_report(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """The report over every partition, read once from the changelog."""
    windows = Windows(settings)
    try:
        records = await windows.refresh()
    finally:
        await windows.stop()
    return analytics.report(records.items(), time.time() if now is None else now)


# the text report --------------------------------------------------------------------------------


def render_text(report: dict[str, Any]) -> str:
    """``banter analytics``: the report as a plain-text page."""
    hour, week = report["last_hour"], report["last_week"]
    lines = [f"banter analytics, {stamp(report)}; partitions reporting: {_list(report['partitions'])}", ""]
    lines += _table(["", "last hour", "last week"], total_rows(hour, week))
    for title, counts in (
        ("replies by source", week["sources"]),
        ("intents", week["intents"]),
        ("not from the preferred model, by reason", week["fallback_reasons"]),
    ):
        lines += ["", f"{title} (last week)"] + (
            _table(["", "count", "share"], share_rows(counts, week["messages"])) if counts else ["  (none)"]
        )
    for title, summary in (("last hour", hour), ("last week", week)):
        rows = model_rows(summary["models"])
        lines += ["", f"models ({title})"] + (_table(MODEL_HEAD, rows) if rows else ["  (none)"])
    lines += ["", "messages per minute, last hour (oldest left)", _spark(report["per_minute"])]
    lines += ["", "messages per hour, last week (a day a line, UTC)", *_days(report["per_hour"])]
    return "\n".join(lines) + "\n"


MODEL_HEAD = ["model", "candidates", "picked", "late", "skipped", "errors", "p50 ms", "p95 ms", "p99 ms"]


def stamp(report: dict[str, Any]) -> str:
    return datetime.fromtimestamp(report["generated_at"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def total_rows(hour: dict[str, Any], week: dict[str, Any]) -> list[list[Any]]:
    """The totals table, shared by the text report and the page: (what, last hour, last week)."""
    rows: list[list[Any]] = [
        ["messages", hour["messages"], week["messages"]],
        ["love declarations", hour["love_declarations"], week["love_declarations"]],
        ["conversations", hour["conversations"], week["conversations"]],
        ["median turns per conversation", num(hour["median_turns"]), num(week["median_turns"])],
        ["fallback line rate", pct(hour["fallback_rate"]), pct(week["fallback_rate"])],
        ["not from the preferred model", pct(hour["not_preferred_rate"]), pct(week["not_preferred_rate"])],
    ]
    for q in ("p50", "p95", "p99"):
        rows.append([f"reply latency {q} (ms)", num(hour["reply_latency_ms"][q]), num(week["reply_latency_ms"][q])])
    return rows


def model_rows(models: dict[str, Any]) -> list[list[Any]]:
    """One row per model, under ``MODEL_HEAD``."""
    return [
        [
            name,
            m["candidates"],
            _with_rate(m["picked"], m["picked_rate"]),
            _with_rate(m["late"], m["late_rate"]),
            _with_rate(m["skipped"], m["skipped_rate"]),
            m["errors"],
            *[num(m["latency_ms"][q]) for q in ("p50", "p95", "p99")],
        ]
        for name, m in models.items()
    ]


def share_rows(counts: dict[str, int], total: int) -> list[list[Any]]:
    return [[name, n, pct(n / total if total else None)] for name, n in counts.items()]


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [head, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(head))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in cells
    ]


def _spark(points: list[dict[str, Any]]) -> str:
    values = [p["messages"] for p in points]
    return f"  |{_bars(values, max(values, default=0))}| max {max(values, default=0)}"


def _days(hours: list[dict[str, Any]]) -> list[str]:
    """The hourly points, a line per UTC day (hours 0 to 23 across), all on one scale."""
    top = max((p["messages"] for p in hours), default=0)
    days: dict[str, list[int]] = {}
    first: dict[str, int] = {}
    for point in hours:
        when = datetime.fromtimestamp(point["start"], UTC)
        day = when.strftime("%a %m-%d")
        first.setdefault(day, when.hour)
        days.setdefault(day, []).append(point["messages"])
    return [
        f"  {day} |{' ' * first[day]}{_bars(values, top)}{' ' * (24 - first[day] - len(values))}| max {max(values)}"
        for day, values in days.items()
    ]


def _bars(values: list[int], top: int) -> str:
    return "".join(BARS[0 if not v else max(1, round(v / top * (len(BARS) - 1)))] for v in values)


def _list(values: list[int]) -> str:
    return ", ".join(map(str, values)) if values else "none yet"


def pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.2g}"


def _with_rate(n: int, rate: float | None) -> str:
    return f"{n} ({pct(rate)})"


def run(settings: Settings, as_json: bool) -> int:
    """``banter analytics``: print the report over every partition."""
    report = asyncio.run(read_report(settings))
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() if as_json else render_text(report).rstrip())
    return 0
