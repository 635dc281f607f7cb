"""Routing under load: reply sources, deadline misses and end-to-end latency.

Runs the same paced stream of messages through a real worker twice in one run,
with the generator as it is and slowed past the budget by the test knob, and
writes ``reports/routing-bench.md``.

    python -m benchmarks.routing [--messages 1000] [--rate 20] [--budget-ms 1000] [--slow-ms 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from schemas import Reply
from streams.broker import LocalKafka
from streams.client import Client, connected, new_message
from streams.kafka import ensure_topics
from streams.process import WorkerProcess
from streams.settings import Settings

TEXTS = (
    "hey there!",
    "what's the weather like today?",
    "who won the world cup in 1998?",
    "I had such a long day at work, my boss was a nightmare",
    "I think I have a crush on someone",
    "can you recommend some music for a rainy evening?",
    "you're my best friend, I love you",
    "I rebuilt an old bicycle with my grandfather this weekend",
    "tell me a joke",
    "my sister keeps borrowing my clothes without asking",
    "how do I reset a tractor carburetor",
    "what do you do for fun?",
    "ok gotta go, bye!",
    "I feel kind of lonely tonight",
    "do you think pineapples dream about being coconuts",
    "thanks, that actually helped",
)
REPORT = Path("reports/routing-bench.md")


@dataclass
class Result:
    name: str
    replies: list[Reply]
    client_ms: list[float]
    sent: int
    budget_ms: float
    seconds: float

    def row(self) -> str:
        n = len(self.replies)
        sources = Counter(r.source for r in self.replies)
        reasons = Counter(r.fallback_reason for r in self.replies if r.fallback_reason)
        latencies = sorted(r.latency_ms for r in self.replies)
        missed = sum(ms > self.budget_ms for ms in latencies)
        share = ", ".join(f"{s} {100 * c / n:.1f}%" for s, c in sources.most_common())
        why = ", ".join(f"{k} {100 * c / n:.1f}%" for k, c in reasons.most_common()) or "none"
        return (
            f"| {self.name} | {n}/{self.sent} | {share} | {why} | {100 * missed / n:.2f}% | "
            f"{_q(latencies, 0.5):.0f} | {_q(latencies, 0.99):.0f} | {_q(sorted(self.client_ms), 0.5):.0f} |"
        )


def _q(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def _stream(settings: Settings, messages: int, rate: float) -> tuple[list[Reply], list[float]]:
    async with connected(settings) as client:
        await client.wait_ready()
        return await _paced(client, messages, rate)


async def _paced(client: Client, messages: int, rate: float) -> tuple[list[Reply], list[float]]:
    started, tasks = time.monotonic(), []
    for i in range(messages):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        message = new_message(TEXTS[i % len(TEXTS)], f"bench-{i % 100}", platform="bench")
        tasks.append(asyncio.create_task(_timed(client, message)))
        if i % 200 == 0:
            print(f"  sent {i}/{messages}", flush=True)
    results = await asyncio.gather(*tasks)
    return [r for r, _ in results], [ms for _, ms in results]


async def _timed(client: Client, message: object) -> tuple[Reply, float]:
    began = time.monotonic()
    reply = await client.ask(message, 120.0)  # type: ignore[arg-type]
    return reply, (time.monotonic() - began) * 1000


def run_scenario(name: str, base: dict[str, str], extra: dict[str, str], messages: int, rate: float) -> Result:
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    env = {**base, "BANTER_TOPIC_PREFIX": prefix, "BANTER_APP_ID": prefix, "BANTER_WEB_PORT": "6099", **extra}
    settings = Settings.from_env(env)
    asyncio.run(ensure_topics(settings))
    module = "tests.faults" if any(name.startswith("FAULT_") for name in extra) else "streams"  # slowed on purpose
    worker = WorkerProcess(env, Path("reports") / f"routing-{name}.log", module=module).start()
    print(f"{name}: worker started, {messages} messages at {rate}/s", flush=True)
    began = time.monotonic()
    try:
        replies, client_ms = asyncio.run(_stream(settings, messages, rate))
    finally:
        worker.stop()
    return Result(name, replies, client_ms, messages, settings.budget_ms, time.monotonic() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--budget-ms", type=float, default=1000.0)
    parser.add_argument("--slow-ms", type=float, default=1500.0, help="delay added to each generator batch")
    args = parser.parse_args()
    base = dict(os.environ) | {"BANTER_BUDGET_MS": str(args.budget_ms)}
    settings = Settings.from_env(base)
    if settings.uses_local_broker:
        LocalKafka(settings, print).up()
    results = [
        run_scenario("generator as is", base, {}, args.messages, args.rate),
        run_scenario(
            f"generator +{args.slow_ms:.0f} ms",
            base,
            {"FAULT_GENERATOR_DELAY_MS": str(args.slow_ms)},
            args.messages,
            args.rate,
        ),
    ]
    _write(results, args)


def _write(results: list[Result], args: argparse.Namespace) -> None:
    lines = [
        "# Routing benchmark",
        "",
        f"`python -m benchmarks.routing --messages {args.messages} --rate {args.rate:g} "
        f"--budget-ms {args.budget_ms:g} --slow-ms {args.slow_ms:g}`; {os.cpu_count()} cores, "
        f"both scenarios in one run, 100 conversations, {len(TEXTS)} texts in turn.",
        "",
        "Latency is end to end, from the message reaching Kafka to its reply (router-measured), "
        "and client-measured from send to receipt. A deadline miss is a reply later than the budget.",
        "",
        "| scenario | replies | by source | fallback reasons | deadline misses | p50 ms | p99 ms | client p50 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *[r.row() for r in results],
        "",
    ]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {REPORT}; medians over {statistics.median([r.seconds for r in results]):.0f} s runs")


if __name__ == "__main__":
    main()
