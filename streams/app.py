"""The one faust App, built from the settings, with banter's metrics and sensors, and the
decorators that make an agent: ``agent`` (role check, micro-batches, gap checks) and ``timer``.

Agents live in ``agents/`` and are found by autodiscovery when the worker starts;
nothing here imports them. Only ``agents/`` and the topic and table declarations
(``streams.topics``, ``streams.tables``) import this module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from faust.types import StreamT, TopicT
from prometheus_client import CollectorRegistry

from streams import pages
from streams.gaps import Gaps
from streams.inputs import Handler
from streams.kafka import faust_credentials
from streams.metrics import Metrics
from streams.services import ModelService, worker_models
from streams.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


class App(faust.App):
    """faust's App, except that an agent module that fails to import stops the worker
    (faust would log a warning and run without that agent)."""

    def _on_autodiscovery_error(self, name: str) -> None:
        raise RuntimeError(f"agent module {name} failed to import") from sys.exc_info()[1]

    async def on_first_start(self) -> None:
        self.conf.datadir.mkdir(parents=True, exist_ok=True)  # made when a worker starts, not at import
        await super().on_first_start()


def create_app(settings: Settings) -> faust.App:
    """A faust App configured from ``settings``; agents are discovered from ``agents``."""
    app = App(
        settings.app_id,
        broker=f"kafka://{settings.bootstrap}",
        broker_credentials=faust_credentials(settings),
        autodiscover=["agents"],
        origin="streams",
        store="memory://",
        datadir=str(settings.state_dir),
        # A static member (KIP-345): a worker restarted under the same name after a crash takes its
        # partitions back at once instead of after the dead member's session timeout. A stopped static
        # member does not leave the group, so its partitions move only after that timeout.
        consumer_group_instance_id=settings.worker if settings.static_membership else None,
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
        # acks=all (faust's default, said here because delivery depends on it): a write counts once every
        # in-sync replica has it, so a replicated topic (BANTER_REPLICATION > 1) loses nothing acked when
        # its leader dies; the brokers' min.insync.replicas says how many replicas that must be at least.
        producer_acks=-1,
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


settings = Settings.from_env()
registry = CollectorRegistry()
metrics = Metrics(registry)
app = create_app(settings)
setup_prometheus_sensors(app, registry=registry, name_prefix="banter_faust")


gaps = Gaps(app, settings, metrics)  # faust's skipped records, found and handled (streams.gaps)
models = ModelService(settings, metrics, worker_models(settings))  # loaded when the worker starts
# Started with the app, before the group join and the tables' recovery: faust starts an app.service() only
# once recovery is complete, so after a crash the models loaded after the session timeout and the changelog
# reads instead of during them.
app.add_dependency(models)
pages.install(app, settings, models)


def agent(role: str, channel: TopicT, batch: int = 0, within_s: float = 0.0) -> Callable[[Handler], Handler]:
    """Make ``handler`` the agent ``banter.<role>`` of ``channel`` in workers whose roles include it.

    The agent takes micro-batches (``batch`` records or ``within_s``; by default the settings')
    and hands them to ``handler`` in offset order per partition, none skipped. The handler
    decodes and guards each record itself (``streams.inputs``), so a bad one never crashes it.
    """

    def register(handler: Handler) -> Handler:
        if not settings.runs(role):
            return handler
        take = gaps.guard(role, channel.topics, handler)
        size, within = batch or settings.max_batch, within_s or settings.batch_wait_ms / 1000

        async def run(stream: StreamT) -> None:
            async for events in cast(faust.Stream, stream).take_events(size, within=within):
                await take(events)

        run.__name__ = run.__qualname__ = handler.__name__
        run.__module__, run.__doc__ = handler.__module__, handler.__doc__
        app.agent(channel, name=f"banter.{role}")(run)
        return handler

    return register


def timer(role: str, interval: float) -> Callable[[F], F]:
    """``app.timer`` that runs only in workers whose roles include ``role``."""

    def register(fun: F) -> F:
        if settings.runs(role):

            async def tick() -> None:
                if not app.rebalancing:  # the tables are being restored from their changelogs: partly old state
                    await fun()

            tick.__name__, tick.__qualname__, tick.__module__ = fun.__name__, fun.__qualname__, fun.__module__
            app.timer(interval=interval)(tick)
        return fun

    return register
