"""The analytics report as an analyst reads it: the CLI's text and the page's HTML (no broker)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from models import analytics
from schemas import Candidate, Event
from streams import analytics as reader
from streams.settings import Settings

NOW = 1_750_000_000.0


def _report() -> dict:
    shard = analytics.Shard(0, {})
    for i in range(12):
        love = i % 4 == 0
        event = Event(
            message_id=f"m{i}",
            conversation_id=f"c{i % 3}",
            platform="test",
            turn=i // 3 + 1,
            intent="love_declaration" if love else "weather",
            intent_confidence=0.9,
            source="canned" if love else "generative",
            fallback_reason=None if love else "uncertain",
            latency_ms=100.0 + i,
            flags=["love_declaration"] if love else [],
            at=NOW - 30,
            candidates=[
                Candidate("intent", "1", "intent", "ok", 3.0, picked=love),
                Candidate("generator", "1", "reply", "ok", 400.0 + i, picked=not love, late=i == 5),
            ],
        )
        shard.add(event, i, NOW)
    return analytics.report(shard.records.items(), NOW)


def test_the_text_report_names_every_figure() -> None:
    text = reader.render_text(_report())
    for line in (
        "messages",
        "love declarations",
        "median turns per conversation",
        "fallback line rate",
        "reply latency p95 (ms)",
        "replies by source",
        "intents",
        "models (last hour)",
        "generator",
    ):
        assert line in text, line
    messages = next(line for line in text.splitlines() if line.strip().startswith("messages "))
    assert messages.split()[1:] == ["12", "12"]
    love = next(line for line in text.splitlines() if "love declarations" in line)
    assert love.split()[-2:] == ["3", "3"]


def test_the_report_survives_a_json_round_trip() -> None:
    report = _report()
    assert orjson.loads(orjson.dumps(report))["last_week"]["models"]["generator"]["late"] == 1


def test_the_changelog_read_is_the_tables_own() -> None:
    from streams import tables
    from streams.app import settings

    assert reader.changelog_topic(settings) == tables.analytics.changelog_topic.get_topic_name()
    assert reader.changelog_topic(Settings(app_id="x")) == "x-analytics_windows-changelog"


def test_the_page_has_the_totals_the_charts_and_the_local_chart_library() -> None:
    from streams import pages as analytics_page

    page = analytics_page.render_page({**_report(), "held_here": [0, 1]})
    assert '<script src="/analytics/uplot.js"></script>' in page
    assert "<td>love declarations</td><td>3</td><td>3</td>" in page
    assert 'id="chart-minute-messages"' in page
    data = page.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert orjson.loads(data)["last_hour"]["messages"] == 12
    assert (analytics_page.VENDOR / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot")
    assert "partial" not in page
    assert "partial: the changelog is still being read" in analytics_page.render_page({**_report(), "complete": False})


class FakeConsumer:
    """The part of aiokafka's consumer the changelog reader uses, over in-memory partitions."""

    def __init__(self, topic: str, logs: dict[int, list[tuple[bytes, bytes | None]]] | None = None) -> None:
        self.topic, self.logs = topic, logs
        self.assigned: list = []
        self.positions: dict = {}
        self._client = self

    async def force_metadata_update(self) -> None:
        return None

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.logs) if self.logs is not None and topic == self.topic else None

    def assignment(self) -> set:
        return set(self.assigned)

    def assign(self, tps: list) -> None:
        self.assigned, self.positions = list(tps), {}

    async def seek_to_beginning(self, *tps: object) -> None:
        assert tps or self.assigned, "No partitions are currently assigned"  # as aiokafka does
        self.positions.update({tp: 0 for tp in tps or self.assigned})

    async def end_offsets(self, tps: list) -> dict:
        assert self.logs is not None
        return {tp: len(self.logs[tp.partition]) for tp in tps}

    async def position(self, tp: object) -> int:
        return int(self.positions[tp])

    async def getmany(self, timeout_ms: int = 0, max_records: int = 0) -> dict:
        assert self.logs is not None
        batch = {}
        for tp in self.assigned:
            log, at = self.logs[tp.partition], self.positions[tp]
            batch[tp] = [SimpleNamespace(key=k, value=v) for k, v in log[at:]]
            self.positions[tp] = len(log)
        return batch

    async def stop(self) -> None:
        return None


def _record(messages: int) -> bytes:
    return orjson.dumps(
        {"counts": {**analytics.new_counts(), "messages": messages}, "ids": {"ab": 0}, "first": 0, "last": 0}
    )


def test_the_reader_answers_empty_before_the_changelog_exists_and_reads_it_once_it_does() -> None:
    settings = Settings(app_id="x")
    fake = FakeConsumer(reader.changelog_topic(settings))
    windows = reader.Windows(settings)

    async def start() -> FakeConsumer:
        return fake

    windows._start = start  # type: ignore[method-assign]
    assert asyncio.run(windows.refresh()) == {}  # no topic yet: nothing, and no error
    fake.logs = {0: [(b"0|m|60", _record(1)), (b"0|m|60", _record(2))], 1: [(b"1|m|60", _record(5))]}
    records = asyncio.run(windows.refresh())
    assert {k: r["counts"]["messages"] for k, r in records.items()} == {"0|m|60": 2, "1|m|60": 5}
    assert "ids" not in records["0|m|60"]
    fake.logs[1].append((b"1|m|60", None))  # a tombstone written later
    assert set(asyncio.run(windows.refresh())) == {"0|m|60"}


def test_the_agents_load_keeps_the_ids_and_waits_for_a_partition_rather_than_take_it_for_empty() -> None:
    settings = Settings(app_id="x")
    fake = FakeConsumer(reader.changelog_topic(settings), {0: [(b"0|m|60", _record(3))]})

    async def consumer(settings: Settings) -> FakeConsumer:
        return fake

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(reader, "_consumer", consumer)
        assert asyncio.run(reader.load(settings, {0}))["0|m|60"]["ids"] == {"ab": 0}
        with pytest.raises(TimeoutError):
            asyncio.run(reader.load(settings, {0, 1}, timeout_s=0.6))
