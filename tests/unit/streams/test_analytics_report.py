"""The analytics report as an analyst reads it: the CLI's text and the page's HTML (no broker)."""

from __future__ import annotations

import orjson

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
            message_id=f"m{i}", conversation_id=f"c{i % 3}", platform="test", turn=i // 3 + 1,
            intent="love_declaration" if love else "weather", intent_confidence=0.9,
            source="canned" if love else "generative", fallback_reason=None if love else "uncertain",
            latency_ms=100.0 + i, flags=["love_declaration"] if love else [], at=NOW - 30,
            candidates=[Candidate("intent", "1", "intent", "ok", 3.0, picked=love),
                        Candidate("generator", "1", "reply", "ok", 400.0 + i, picked=not love, late=i == 5)],
        )  # fmt: skip
        shard.add(event, i, NOW)
    return analytics.report(shard.records.items(), NOW)


def test_the_text_report_names_every_figure() -> None:
    text = reader.render_text(_report())
    for line in ("messages", "love declarations", "median turns per conversation", "fallback line rate",
                 "reply latency p95 (ms)", "replies by source", "intents", "models (last hour)", "generator"):
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
    from streams import analytics_page

    page = analytics_page.render_page({**_report(), "held_here": [0, 1]})
    assert '<script src="/analytics/uplot.js"></script>' in page
    assert "<td>love declarations</td><td>3</td><td>3</td>" in page
    assert 'id="chart-minute-messages"' in page
    data = page.split('<script id="data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert orjson.loads(data)["last_hour"]["messages"] == 12
    assert (analytics_page.VENDOR / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot")
