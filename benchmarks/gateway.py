"""The HTTP gateway's own overhead per request (issue 12): one message produced straight
to Kafka (aiokafka, acks=all, as the gateway does) against the same message POSTed to a
``banter gateway`` process that answers as soon as Kafka acked it (``wait_ms=0``, a 202).
The two alternate in blocks on one broker, so drift on a shared machine hits both alike.

    python -m benchmarks.gateway [--requests 2000] [--concurrency 16]

Uses BANTER_KAFKA_BOOTSTRAP when set, else starts banter's local broker on port 19392
(and stops it after). Writes ``reports/gateway-bench.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer

from schemas import encode
from streams.broker import LocalKafka
from streams.client import new_message
from streams.kafka import ensure_topics, kafka_options
from streams.process import ROOT
from streams.settings import Settings

TOKEN = "bench-token"
BENCH_KAFKA_PORT = 19392
BLOCK = 100


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "n": len(values_ms),
        "median_ms": statistics.median(values_ms),
        "p90_ms": percentile(values_ms, 0.90),
        "p99_ms": percentile(values_ms, 0.99),
        "mean_ms": statistics.fmean(values_ms),
        "max_ms": max(values_ms),
    }


async def timed(call: Callable[[], Awaitable[None]], count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def measure(settings: Settings, url: str, requests: int, concurrency: int) -> dict[str, Any]:
    producer = AIOKafkaProducer(**kafka_options(settings), acks="all", linger_ms=0, enable_idempotence=True)
    await producer.start()
    session = aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"})
    topic = settings.topic("messages")

    async def direct() -> None:
        message = new_message("hello, how are you today?", f"bench-{uuid.uuid4().hex[:6]}", "bench", "web")
        await producer.send_and_wait(topic, encode(message), key=message.conversation_id.encode())

    async def gateway() -> None:
        body = {
            "conversation_id": f"bench-{uuid.uuid4().hex[:6]}",
            "user_id": "bench",
            "text": "hello, how are you today?",
        }
        async with session.post(f"{url}/v1/messages?wait_ms=0", json=body) as response:
            await response.read()
            if response.status != 202:
                raise RuntimeError(f"gateway answered {response.status}")

    try:
        await timed(direct, 100)  # warm-up: connections, metadata, the gateway's first requests
        await timed(gateway, 100)
        kafka_ms: list[float] = []
        gateway_ms: list[float] = []
        for _ in range(max(1, requests // BLOCK)):
            kafka_ms += await timed(direct, BLOCK)
            gateway_ms += await timed(gateway, BLOCK)
        throughput = {
            "kafka": await _rate(direct, requests, concurrency),
            "gateway": await _rate(gateway, requests, concurrency),
        }
    finally:
        await session.close()
        await producer.stop()
    kafka, through = summary(kafka_ms), summary(gateway_ms)
    overhead = {key: through[key] - kafka[key] for key in ("median_ms", "p90_ms", "p99_ms", "mean_ms")}
    return {
        "kafka": kafka,
        "gateway": through,
        "overhead": overhead,
        "concurrency": concurrency,
        "throughput_per_s": throughput,
    }


async def _rate(call: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    """Requests per second with ``concurrency`` callers in a loop."""
    per_caller = max(1, requests // concurrency)
    started = time.perf_counter()
    await asyncio.gather(*(timed(call, per_caller) for _ in range(concurrency)))
    return per_caller * concurrency / (time.perf_counter() - started)


def start_gateway(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **env,
        "BANTER_GATEWAY_PORT": str(port),
        "BANTER_GATEWAY_TOKENS": f"web={TOKEN}",
        "BANTER_GATEWAY_RATE_PER_S": "1000000",
        "BANTER_GATEWAY_BURST": "1000000",
        "BANTER_LOG_LEVEL": "warning",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "streams", "gateway"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"gateway did not start; see {log}")


def report(result: dict[str, Any], args: argparse.Namespace) -> str:
    k, g, o = result["kafka"], result["gateway"], result["overhead"]
    paths = (("straight to Kafka (aiokafka send_and_wait)", k), ("through the gateway (POST, 202)", g))
    rows = [
        f"| {name} | {s['median_ms']:.2f} | {s['p90_ms']:.2f} | {s['p99_ms']:.2f} | {s['mean_ms']:.2f} |"
        for name, s in paths
    ]
    return (
        "\n".join(
            [
                "# Gateway overhead per request",
                "",
                f"{g['n']} sequential requests each way, alternating in blocks of {BLOCK}, after 100 warm-up each; "
                f"{os.cpu_count()} CPUs, shared machine. One message = one record on banter.messages, acks=all.",
                "",
                "| path | median ms | p90 ms | p99 ms | mean ms |",
                "| --- | --- | --- | --- | --- |",
                *rows,
                f"| **gateway overhead** | **{o['median_ms']:.2f}** | {o['p90_ms']:.2f} | **{o['p99_ms']:.2f}** | "
                f"{o['mean_ms']:.2f} |",
                "",
                f"Throughput with {result['concurrency']} concurrent callers: "
                f"{result['throughput_per_s']['kafka']:.0f} msg/s straight to Kafka (one producer), "
                f"{result['throughput_per_s']['gateway']:.0f} req/s through the gateway (one process).",
                "",
                f"Command: `python -m benchmarks.gateway --requests {args.requests} --concurrency {args.concurrency}`",
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "reports")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    kafka = None
    if not env.get("BANTER_KAFKA_BOOTSTRAP"):
        kafka = LocalKafka(Settings.from_env({**env, "BANTER_LOCAL_KAFKA_PORT": str(BENCH_KAFKA_PORT)}), print)
        kafka.up()
        env["BANTER_KAFKA_BOOTSTRAP"] = f"127.0.0.1:{BENCH_KAFKA_PORT}"
    env["BANTER_TOPIC_PREFIX"] = f"gwbench{uuid.uuid4().hex[:6]}"
    settings = Settings.from_env(env)
    args.out.mkdir(parents=True, exist_ok=True)
    process = None
    try:
        asyncio.run(ensure_topics(settings))
        process, url = start_gateway(env, args.out / "gateway-bench.log")
        result = asyncio.run(measure(settings, url, args.requests, args.concurrency))
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        if kafka is not None:
            kafka.down()
    (args.out / "gateway-bench.json").write_text(json.dumps(result, indent=2) + "\n")
    text = report(result, args)
    (args.out / "gateway-bench.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
