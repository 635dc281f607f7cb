"""``banter demo``: from nothing to replies in one command.

Brings the local broker up (unless BANTER_KAFKA_BOOTSTRAP names one), makes the
models ready, starts a worker, sends a short scripted conversation, prints each
reply with its source, intent and latency, and shows where the metrics are.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
import uuid

from schemas import Reply
from streams import commands
from streams.broker import LocalKafka
from streams.cli import progress
from streams.client import connected, new_message
from streams.kafka import ensure_topics
from streams.process import WorkerProcess
from streams.settings import Settings

SCRIPT = (
    "hey there!",
    "what's the weather like today?",
    "who won the world cup in 1998?",
    "I had such a long day at work, my boss was a nightmare",
    "I think I have a crush on someone from my climbing class",
    "what should I say to them?",
    "can you recommend some music for a rainy evening?",
    "how do I reset the carburetor on a 1974 tractor",
    "you're my best friend, I love you",
    "ok gotta go, bye!",
)


def run(settings: Settings) -> int:
    started = time.monotonic()
    _broker(settings)
    _models(settings)
    worker = _start_worker(settings)
    try:
        latencies = asyncio.run(_converse(settings))
    finally:
        _metrics_excerpt(settings)
        worker.stop()
    sources = "canned, retrieval, generative or fallback"
    progress(
        f"demo done in {time.monotonic() - started:.0f} s; median end-to-end latency "
        f"{statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms ({sources} per reply)"
    )
    progress("keep going: `banter worker` in one terminal, `banter chat` in another; `banter broker down` stops Kafka")
    return 0


def _broker(settings: Settings) -> None:
    progress("step 1/4: Kafka")
    if settings.uses_local_broker:
        LocalKafka(settings, progress).up()
    created = asyncio.run(ensure_topics(settings))
    progress(f"topics ready ({len(created)} created)")


def _models(settings: Settings) -> None:
    from models.build import artifacts
    from streams.services import model_config

    progress("step 2/4: models")
    config = model_config(settings)
    if artifacts.check(config):
        progress("building models (first run only, a few minutes)")
        artifacts.build_all(config, progress)
    progress("models ready")


def _start_worker(settings: Settings) -> WorkerProcess:
    log = settings.home / "demo-worker.log"
    progress(f"step 3/4: starting a worker (log: {log})")
    return WorkerProcess(None, log).start()


async def _converse(settings: Settings) -> list[float]:
    progress("step 4/4: waiting for the worker to join and load its models, then a short conversation")
    conversation = f"demo-{uuid.uuid4().hex[:6]}"
    latencies = []
    async with connected(settings) as client:
        await client.wait_ready()
        for text in SCRIPT:
            reply = await client.ask(new_message(text, conversation, "demo-user", "demo"), 30.0)
            _show(text, reply)
            latencies.append(reply.latency_ms)
    return latencies


def _show(text: str, reply: Reply) -> None:
    print(f"  you:    {text}")
    print(f"  banter: {reply.text}")
    print(f"          {commands.describe(reply)}", flush=True)


def _metrics_excerpt(settings: Settings) -> None:
    url = f"http://{settings.web_host}:{settings.web_port}/metrics"
    try:
        body = urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError as exc:
        progress(f"metrics at {url} (not reachable now: {exc})")
        return
    lines = [line for line in body.splitlines() if line.startswith(("banter_replies_total", "banter_fallbacks_total"))]
    progress(f"metrics: {url} (Prometheus format); replies by source:")
    for line in lines:
        print(f"  {line}")
