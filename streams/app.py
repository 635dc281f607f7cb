"""The one faust App, built from the settings, with banter's metrics and sensors.

Agents live in ``agents/`` and are found by autodiscovery when the worker starts;
nothing here imports them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.settings import Settings


class App(faust.App):
    """faust's App, except that an agent module that fails to import stops the worker
    (faust would log a warning and run without that agent)."""

    def _on_autodiscovery_error(self, name: str) -> None:
        raise RuntimeError(f"agent module {name} failed to import") from sys.exc_info()[1]


def create_app(settings: Settings) -> faust.App:
    """A faust App configured from ``settings``; agents are discovered from ``agents``."""
    datadir = settings.home / "faust" / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=_credentials(settings),
        autodiscover=["agents"],
        origin="streams",
        store="memory://",
        datadir=str(datadir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 10),
        table_standby_replicas=0,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        producer_linger_ms=settings.producer_linger_ms,
        # On stop, faust would wait until every event taken into a micro-batch buffer is acked,
        # and an event buffered but never handed out is never acked: shutdown hung until the
        # orchestrator's SIGKILL. Unacked events are simply not committed and come again after
        # the restart (at-least-once; every step is idempotent by message_id).
        stream_wait_empty=False,
        # A topic created just before the group's assignment (a changelog faust creates at start,
        # or banter's own topics) may have no partition leaders yet in the leader's metadata; the
        # assignor then leaves it out ("Ignoring missing topic") until the metadata is refreshed,
        # by default 5 minutes later. Refreshing every few seconds lets the group rebalance onto it.
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        logging_config=None,
    )
    return app


METADATA_MAX_AGE_MS = 5_000


def _credentials(settings: Settings) -> Any:
    if not settings.kafka_username:
        return None
    return faust.SASLCredentials(
        username=settings.kafka_username, password=settings.kafka_password.reveal()
    )


settings = Settings.from_env()
registry = CollectorRegistry()
metrics = Metrics(registry)
app = create_app(settings)
setup_prometheus_sensors(app, registry=registry, name_prefix="banter_faust")


def role_agent(name: str, channel: Any, **options: Any) -> Callable[[Any], Any]:
    """``app.agent`` for the agents this worker's roles include; others stay unregistered."""

    def register(fun: Any) -> Any:
        if not settings.runs(name):
            return fun
        return app.agent(channel, name=f"banter.{name}", **options)(fun)

    return register


def role_timer(name: str, interval: float) -> Callable[[Any], Any]:
    """``app.timer`` that runs only in workers whose roles include ``name``."""

    def register(fun: Any) -> Any:
        if not settings.runs(name):
            return fun
        return app.timer(interval=interval)(fun)

    return register
