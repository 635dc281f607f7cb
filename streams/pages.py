"""The worker's web pages (``/metrics`` is faust's): ``/ready``, and ``/analytics``, totals over all
partitions, tables and charts. ``install`` adds them to the app.

``/analytics`` is HTML (tables rendered here, charts drawn in the browser by uPlot, a 51 kB MIT
library vendored under ``streams/web/vendor`` and served by the worker itself, so the page needs
nothing from the internet and the worker draws no images); ``/analytics.json`` is the same report.
"""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.web import Request, Response, View
from mode import Service

from models import analytics
from streams import analytics as reader
from streams.services import ModelService
from streams.settings import Settings

log = logging.getLogger(__name__)
WEB = Path(__file__).parent / "web"
VENDOR = WEB / "vendor"


class AnalyticsReader(Service):
    """This worker's reader of the analytics changelog, opened on the first request."""

    def __init__(self, app: faust.App, settings: Settings, **kw: Any) -> None:
        super().__init__(**kw)
        self.app, self.events_topic = app, settings.topic("events")
        self.windows = reader.Windows(settings)

    async def on_stop(self) -> None:
        await self.windows.stop()

    async def report(self) -> dict[str, Any]:
        """The report over what has been read; ``complete`` is False when the read fell short this time."""
        complete = True
        try:
            await self.windows.refresh()
        except TimeoutError as exc:  # a long changelog: the next request reads on from here
            log.warning("analytics changelog not read to its end yet", extra={"error": str(exc)})
            complete = False
        except KafkaError as exc:  # the broker away or the topic changed: a fresh consumer next time
            log.warning(
                "analytics changelog unreadable; answering with the records read before", extra={"error": repr(exc)}
            )
            await self.windows.stop()
            complete = False
        held = sorted(tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.events_topic)
        report = analytics.report(self.windows.records.items(), time.time())
        return {**report, "held_here": held, "complete": complete}


def install(app: faust.App, settings: Settings, models: ModelService) -> None:
    """Every page of the worker, on ``app``'s web server."""
    analytics_reader = AnalyticsReader(app, settings)
    app.service(analytics_reader)  # type: ignore[arg-type]  # faust accepts instances too

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        """200 once every model of this worker is loaded, 503 before."""
        status = 200 if models.loaded else 503
        return web.json({"ready": models.loaded, "models": sorted(models.models)}, status=status)

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
    meta = (
        f"{reader.stamp(report)} · partitions reporting: {partitions} · held by this worker: "
        f"{', '.join(map(str, report.get('held_here', []))) or 'none'}"
    )
    if not report.get("complete", True):
        meta += " · partial: the changelog is still being read, reload for the rest"
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
