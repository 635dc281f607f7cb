"""The ``/analytics`` page on every worker: totals over all partitions, tables and charts.

``/analytics`` is HTML (tables rendered here, charts drawn in the browser by uPlot, a 51 kB MIT
library vendored under ``streams/web/vendor`` and served by the worker itself, so the page needs
nothing from the internet and the worker draws no images); ``/analytics.json`` is the same report.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any

import orjson
from faust.web import Request, Response, View
from mode import Service

from models import analytics
from streams import analytics as reader
from streams import topics
from streams.app import app, settings

WEB = Path(__file__).parent / "web"
VENDOR = WEB / "vendor"


class AnalyticsReader(Service):
    """This worker's reader of the analytics changelog, opened on the first request."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.windows = reader.Windows(settings)

    async def on_stop(self) -> None:
        await self.windows.stop()

    async def report(self) -> dict[str, Any]:
        records = await self.windows.refresh()
        held = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topics.events.get_topic_name())
        return {**analytics.report(records.items(), time.time()), "held_here": held}


analytics_reader = AnalyticsReader()
app.service(analytics_reader)  # type: ignore[arg-type]  # faust accepts instances too


@app.page("/analytics")
async def analytics_html(web: View, request: Request) -> Response:
    """Totals over every partition (whichever worker holds it), with charts."""
    return web.html(render_page(await analytics_reader.report()))


@app.page("/analytics.json")
async def analytics_json(web: View, request: Request) -> Response:
    return web.json(await analytics_reader.report())


@app.page("/analytics/uplot.js")
async def uplot_js(web: View, request: Request) -> Response:
    return web.bytes((VENDOR / "uPlot.iife.min.js").read_bytes(), content_type="application/javascript")


@app.page("/analytics/uplot.css")
async def uplot_css(web: View, request: Request) -> Response:
    return web.bytes((VENDOR / "uPlot.min.css").read_bytes(), content_type="text/css")


def render_page(report: dict[str, Any]) -> str:
    hour, week = report["last_hour"], report["last_week"]
    partitions = ", ".join(map(str, report["partitions"])) or "none yet"
    meta = f"{reader.stamp(report)} · partitions reporting: {partitions} · held by this worker: " \
           f"{', '.join(map(str, report.get('held_here', []))) or 'none'}"  # fmt: skip
    parts = {
        "<!--META-->": html.escape(meta),
        "<!--TOTALS-->": _table(["", "last hour", "last week"], reader.total_rows(hour, week)),
        "<!--SOURCES-->": _table(["", "count", "share"], reader.share_rows(week["sources"], week["messages"])),
        "<!--INTENTS-->": _table(["", "count", "share"], reader.share_rows(week["intents"], week["messages"])),
        "<!--REASONS-->": _table(["", "count", "share"], reader.share_rows(week["fallback_reasons"], week["messages"])),
        "<!--MODELS_HOUR-->": _table(reader.MODEL_HEAD, reader.model_rows(hour["models"])),
        "<!--MODELS_WEEK-->": _table(reader.MODEL_HEAD, reader.model_rows(week["models"])),
        "/*DATA*/": orjson.dumps(report).decode().replace("</", "<\\/"),
    }
    page = (WEB / "analytics.html").read_text()
    for marker, text in parts.items():
        page = page.replace(marker, text)
    return page


def _table(head: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    heads = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return f"<table><thead><tr>{heads}</tr></thead><tbody>{cells}</tbody></table>"
