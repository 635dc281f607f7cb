"""How fast a worker answers again after a restart, when its tables hold a long history.

``make bench-restart`` (``python -m benchmarks.restart``; ``--help`` lists the options) writes
reports/restart.{md,json}. Running a million messages through the models would take hours on two
cores, so the history is written the way a worker writes it: for each of N messages over K
conversations, the records banter's agents put in their changelogs (the conversation's state after
the user's turn and after the bot's reply, from ``models.context``; the router's state with the entry
and after it was answered, from ``streams.routing``; a tombstone once a conversation went idle; the
progress marks a worker saves twice a second), by default as Kafka's log cleaner leaves them in the
steady state (``--uncompacted``: every write, as if compaction never ran). Then, timed from the start
of the worker process to the
reply of a probe message in a conversation of that history (whose turn must carry the history back):

1. cold: a new worker with no local state (a new machine) reads every changelog;
2. restart: the same worker stopped with SIGTERM and started again with its local state;
3. crash: kill -9 during load, then started again.

Each phase reports the time to the probe's reply, the faust milestones from the worker's log, the
worker's RSS, and the changelog records the worker had to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner

from benchmarks.bench.cluster import broker
from models import context
from schemas import Reply, Turn, decode
from streams import routing
from streams.client import connected, new_message
from streams.kafka import CHANGELOG_CONFIGS, ensure_topics, kafka_options
from streams.process import ROOT, WorkerProcess
from streams.settings import Settings

Progress = Callable[[str], None]
REPORTS = ROOT / "reports"
MESSAGE_RATE = 116.0  # the history is spread over the time a worker at this rate would have taken
TAIL_S = 600.0  # the changelogs' active segment (segment.ms): never compacted
MARKS_PER_S = 2.0  # progress marks saved per agent and input partition while it has input
AGENTS_WITH_MARKS = ("context", "understand", "generator", "router", "analytics")
USER_LINES = (
    "ugh monday again, i need coffee",
    "my cat knocked my plant off the shelf lol",
    "any idea what i should cook tonight",
    "just got back from the gym and i'm dead",
    "do you ever get bored of talking to people",
    "i finally finished that book about the ocean",
    "should i text him back or leave it",
    "the bus was late AGAIN this morning",
)
BOT_LINES = (
    "Coffee first, feelings later. Obviously.",
    "Your cat has taste. The plant had it coming.",
    "Pasta. It's always pasta. Don't fight me on this.",
    "Dead? You're talking to me, so that's a no.",
    "Bored of you? Never. Of Mondays? Constantly.",
    "Look at you, reading books like a main character.",
)


@dataclass
class Phase:
    name: str
    reply_s: float | None = None  # worker start -> the probe's reply
    milestones: dict[str, float] = field(default_factory=dict)  # worker start -> faust's log lines
    rss_mib: float | None = None
    peak_rss_mib: float | None = None
    probe_turn: int | None = None
    probe_history: int | None = None
    expected_turn: int | None = None
    changelog_records: int = 0  # the changelogs' length when the worker started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _partition(key: bytes, partitions: int) -> int:
    return int(DefaultPartitioner()(key, list(range(partitions)), list(range(partitions))))


async def _create_changelogs(settings: Settings, tables: list[str]) -> None:
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    try:
        configs = {name: str(value) for name, value in CHANGELOG_CONFIGS.items()}
        topics = [
            NewTopic(
                f"{settings.app_id}-{t}-changelog", settings.partitions, settings.replication, topic_configs=configs
            )
            for t in tables
        ]
        await admin.create_topics(topics)
    finally:
        await admin.close()


class Log:
    """One changelog key's writes, as compaction leaves them: before ``tail_from`` only the last write
    survives (written once, when the key's first write at or after ``tail_from`` comes, or at the end);
    from ``tail_from`` on, every write. ``tail_from`` = -inf keeps every write (no compaction yet)."""

    def __init__(self, send: Callable[[Any], Any], tail_from: float) -> None:
        self.send, self.tail_from = send, tail_from
        self.held: tuple[Any] | None = None

    async def write(self, value: Any, at: float) -> None:
        if at < self.tail_from:
            self.held = (value,)
            return
        await self.flush()
        await self.send(value)

    async def flush(self) -> None:
        if self.held is not None:
            await self.send(self.held[0])
            self.held = None


async def seed(
    settings: Settings, messages: int, conversations: int, compacted: bool, progress: Progress
) -> dict[str, int]:
    """Write the changelogs of ``messages`` handled over ``conversations``; returns records per changelog.

    ``compacted``: as Kafka's log cleaner leaves them in the steady state (the changelogs roll a segment
    every 10 minutes and compact at 10% dirty, streams.kafka.CHANGELOG_CONFIGS): each key's last value
    before the last ``TAIL_S``, every write after it, tombstones of the last ``delete.retention.ms``.
    Otherwise every write (the worst case: compaction never ran).
    """
    await ensure_topics(settings)
    await _create_changelogs(settings, ["conversations", "routing", "progress"])
    producer = AIOKafkaProducer(**kafka_options(settings), linger_ms=20, max_batch_size=1 << 20, acks=1)
    await producer.start()
    counts = {"conversations": 0, "routing": 0, "progress": 0}
    rng = random.Random(7)
    span_s = messages / MESSAGE_RATE
    began, now = time.monotonic(), time.time()
    start_at = now - span_s
    tail_from = now - TAIL_S if compacted else -math.inf
    tombstones_from = now - int(CHANGELOG_CONFIGS["delete.retention.ms"]) / 1000 if compacted else -math.inf
    per_conv = max(1, messages // conversations)
    pending: list[asyncio.Future[Any]] = []

    async def send(table: str, key: bytes, value: Any, partition: int) -> None:
        raw = None if value is None else orjson.dumps(value)
        pending.append(await producer.send(f"{settings.app_id}-{table}-changelog", raw, key=key, partition=partition))
        counts[table] += 1
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending.clear()

    def log(table: str, key: bytes, partition: int) -> Log:
        return Log(lambda value: send(table, key, value, partition), tail_from)

    try:
        sent = 0
        for c in range(conversations):
            cid = f"hist-{c}"
            key = cid.encode()
            partition = _partition(key, settings.partitions)
            first = start_at + (span_s - per_conv * 10.0) * c / conversations
            state: dict[str, Any] = context.new_state(first)
            conv = routing.Conversation(partition=partition)
            states, routes = log("conversations", key, partition), log("routing", key, partition)
            for i in range(per_conv):
                t = first + i * 10.0
                mid = f"{cid}-{i}"
                state, _ = context.user_turn(state, mid, rng.choice(USER_LINES), t, settings.history_turns)
                state["partition"] = partition
                await states.write(state, t)
                state = context.bot_turn(state, mid, rng.choice(BOT_LINES), settings.history_turns, t + 0.3)
                await states.write(state, t + 0.3)
                conv.pending[mid] = routing.Entry(partition=partition, replied_at=t + 0.3, delivered=False)
                conv.active_at = t
                await routes.write(routing.to_stored(conv), t)
                del conv.pending[mid]
                conv.done = [*conv.done, mid][-32:]
                await routes.write(routing.to_stored(conv), t + 0.4)
                sent += 1
            await states.flush()
            forgotten_at = conv.active_at + settings.routing_idle_s  # the router's rescan forgets it then
            if forgotten_at < now and forgotten_at < tombstones_from:
                routes.held = None  # its tombstone outlived delete.retention.ms: compaction removed the key
            elif forgotten_at < now:
                await routes.write(None, forgotten_at)  # the tombstone
            await routes.flush()
            if c % max(1, conversations // 20) == 0:
                progress(f"seeding: {sent:,} of {messages:,} messages ({time.monotonic() - began:.0f} s)")
        marks = int(span_s * MARKS_PER_S)
        for p in range(settings.partitions):
            for agent in AGENTS_WITH_MARKS:
                # the marks' volume, under a topic no agent reads (a mark is the last offset an agent saw)
                marks_log = log("progress", f"{agent}|{settings.topic('history')}|{p}".encode(), p)
                for m in range(marks):
                    await marks_log.write(m * 7, start_at + m / MARKS_PER_S)
                await marks_log.flush()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    progress(f"seeded {sum(counts.values()):,} changelog records in {time.monotonic() - began:.0f} s: {counts}")
    return counts


async def _changelog_length(settings: Settings) -> int:
    consumer = AIOKafkaConsumer(**kafka_options(settings))
    await consumer.start()
    try:
        total = 0
        for table in ("conversations", "routing", "progress"):
            topic = f"{settings.app_id}-{table}-changelog"
            parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
            ends = await consumer.end_offsets(parts)
            starts = await consumer.beginning_offsets(parts)
            total += sum(ends[tp] - starts[tp] for tp in parts)
        return total
    finally:
        await consumer.stop()


async def probe(settings: Settings, conversation_id: str, timeout_s: float) -> tuple[Reply, Turn | None, int]:
    """Ask in ``conversation_id`` until a model (not the fallback line) answers: that reply, the turn the
    worker made of the last message, and how many messages were asked."""
    turns = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await turns.start()
    try:
        parts = [TopicPartition(settings.topic("turns"), p) for p in range(settings.partitions)]
        turns.assign(parts)
        await turns.seek_to_end(*parts)
        for tp in parts:
            await turns.position(tp)  # resolved now: a lazy seek would land after the probe's turn
        async with connected(settings) as client:
            deadline, asks = time.monotonic() + timeout_s, 0
            while True:
                asks += 1
                message = new_message("hey, remember what we talked about?", conversation_id, "bench-user")
                try:
                    reply = await client.ask(message, max(1.0, deadline - time.monotonic()))
                except TimeoutError:
                    raise TimeoutError(f"no reply to the probe within {timeout_s:.0f} s") from None
                if reply.source != "fallback" or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
        turn, until = None, time.monotonic() + 10.0
        while turn is None and time.monotonic() < until:
            for records in (await turns.getmany(timeout_ms=1000)).values():
                for record in records:
                    candidate = decode(record.value, Turn)
                    if candidate.message_id == message.message_id:
                        turn = candidate
        return reply, turn, asks
    finally:
        await turns.stop()


def _rss_mib(pid: int) -> tuple[float | None, float | None]:
    try:
        fields = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
    except OSError:
        return None, None
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


MILESTONES = {
    "partitions assigned": "Executing _on_partitions_assigned",
    "tables recovered": "Restore complete",
    "worker ready": "Worker]: Ready",
}


def milestones(log: Path, started_at: float) -> dict[str, float]:
    """Seconds from ``started_at`` (wall clock) to the first log line of each milestone."""
    found: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        for name, text in MILESTONES.items():
            if name not in found and text in str(entry.get("msg", "")):
                found[name] = round(float(entry["ts"]) - started_at, 2)
    return found


def run_phase(
    name: str, env: dict[str, str], log: Path, cid: str, turns_before: int, progress: Progress
) -> tuple[Phase, WorkerProcess]:
    """Start a worker and time its answer to a probe in ``cid``, which had ``turns_before`` turns."""
    settings = Settings.from_env(env)
    phase = Phase(name, changelog_records=asyncio.run(_changelog_length(settings)))
    started_at = time.time()
    began = time.monotonic()
    worker = WorkerProcess(env, log).start()
    progress(f"{name}: worker started, {phase.changelog_records:,} changelog records")
    reply, seen, asks = asyncio.run(probe(settings, cid, 600.0))
    phase.expected_turn = turns_before + asks
    phase.reply_s = round(time.monotonic() - began, 2)
    assert worker.process is not None
    phase.rss_mib, phase.peak_rss_mib = _rss_mib(worker.process.pid)
    phase.milestones = milestones(log, started_at)
    if seen is not None:
        phase.probe_turn, phase.probe_history = seen.turn, len(seen.history)
    progress(
        f"{name}: probe answered {phase.reply_s} s after the start ({reply.source}); turn {phase.probe_turn} "
        f"(expected {phase.expected_turn}), RSS {phase.rss_mib:.0f} MiB; {phase.milestones}"
    )
    return phase, worker


def load(settings: Settings, seconds: float, rate: float, conversations: int) -> None:
    """Live traffic over the history's conversations but the first hundred (the probe's is among those)."""

    async def run() -> None:
        async with connected(settings) as client:
            end = time.monotonic() + seconds
            i = 0
            while time.monotonic() < end:
                await client.send(
                    new_message(
                        "so what's new with you", f"hist-{100 + i * 7919 % max(1, conversations - 100)}", "bench-user"
                    )
                )
                i += 1
                await asyncio.sleep(1 / rate)

    asyncio.run(run())


def report(args: argparse.Namespace, counts: dict[str, int], phases: list[Phase], path: Path) -> str:
    lines = [
        "# Restart after a long history",
        "",
        f"- history: {args.messages:,} messages over {args.conversations:,} conversations, written as the agents "
        f"write their changelogs: {', '.join(f'{k} {v:,}' for k, v in counts.items())} records",
        "- changelogs: "
        + (
            "every write kept (compaction never ran)"
            if args.uncompacted
            else f"as compaction leaves them: each key's last value, every write of the last {TAIL_S:.0f} s, "
            "tombstones of the last hour"
        ),
        "- table store: " + args.store,
        "- time is from the worker process's start to a model's reply to a probe in a conversation of the history",
        "",
        "| phase | changelog records | first reply (s) | partitions assigned (s) | tables recovered (s) "
        "| ready (s) | RSS (MiB) | peak RSS (MiB) | probe's turn / expected |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in phases:
        m = p.milestones
        lines.append(
            f"| {p.name} | {p.changelog_records:,} | {p.reply_s} | {m.get('partitions assigned', '-')} "
            f"| {m.get('tables recovered', '-')} | {m.get('worker ready', '-')} | {p.rss_mib:.0f} "
            f"| {p.peak_rss_mib:.0f} | {p.probe_turn} / {p.expected_turn} |"
        )
    restarts = [p for p in phases if p.name != "cold"]
    lines += ["", "Targets (issue 11, point 5):"]
    for p in restarts:
        ok = p.reply_s is not None and p.reply_s <= 15.0
        lines.append(f"- {p.name}: answers again within 15 s: {'met' if ok else 'NOT MET'} ({p.reply_s} s)")
    peak = max((p.peak_rss_mib or 0) for p in phases)
    lines.append(f"- RSS under 2 GiB: {'met' if peak < 2048 else 'NOT MET'} (peak {peak:.0f} MiB)")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    path.with_suffix(".json").write_text(
        json.dumps(
            {
                "args": {k: str(v) for k, v in vars(args).items()},
                "seeded": counts,
                "phases": [asdict(p) for p in phases],
            },
            indent=2,
        )
    )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.restart", description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--store", choices=("rocksdb", "memory"), default="rocksdb", help="BANTER_TABLE_STORE")
    parser.add_argument("--port", type=int, default=19592, help="the local broker's port (unless one is configured)")
    parser.add_argument(
        "--uncompacted", action="store_true", help="every changelog write kept (compaction never ran): the worst case"
    )
    parser.add_argument("--report", type=Path, default=REPORTS / "restart.md")
    args = parser.parse_args(argv)

    def progress(line: str) -> None:
        print(f"[restart] {line}", flush=True)

    args.report.parent.mkdir(parents=True, exist_ok=True)
    with broker(dict(os.environ), args.port, progress) as base, tempfile.TemporaryDirectory() as tmp:
        prefix = f"restart-{uuid.uuid4().hex[:6]}"
        env = {
            **base,
            "BANTER_TOPIC_PREFIX": prefix,
            "BANTER_APP_ID": prefix,
            "BANTER_WEB_PORT": str(_free_port()),
            "BANTER_DATA_DIR": str(Path(tmp) / "state"),
            "BANTER_TABLE_STORE": args.store,
            "BANTER_LOG_LEVEL": "info",
        }
        settings = Settings.from_env(env)
        counts = asyncio.run(seed(settings, args.messages, args.conversations, not args.uncompacted, progress))
        per_conv = max(1, args.messages // args.conversations)
        cid, phases = "hist-42", []
        logs = {name: REPORTS / f"restart-{name}.log" for name in ("cold", "restart", "crash")}
        for log in logs.values():
            log.unlink(missing_ok=True)
        phase, worker = run_phase("cold", env, logs["cold"], cid, per_conv, progress)
        phases.append(phase)
        try:
            worker.stop()
            phase, worker = run_phase("restart", env, logs["restart"], cid, phases[-1].probe_turn or 0, progress)
            phases.append(phase)
            traffic = threading.Thread(target=load, args=(settings, 20.0, 20.0, args.conversations))
            traffic.start()
            time.sleep(10.0)
            worker.kill()
            progress("crash: kill -9 under load (20 messages/s)")
            phase, worker = run_phase("crash", env, logs["crash"], cid, phases[-1].probe_turn or 0, progress)
            phases.append(phase)
            traffic.join()
        finally:
            worker.stop()
    print(report(args, counts, phases, args.report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
