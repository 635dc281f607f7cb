"""Rebalances under load on the real broker, as a platform sees them.

A platform offers a steady load. Mid-load a second worker joins the group and,
once it holds partitions, the first is stopped with SIGTERM; the survivor
answers the rest. Then the same with roles: beside a generator-only worker (a
consumer group of its own), a second all-but-generator worker joins and the
first one is stopped. Every message is answered, a repeat on the raw topic
carries the same text so that a platform's dedupe by ``message_id`` delivers
each reply once, turn numbers increase within each conversation, and replies
never pause for 30 s while messages are being offered.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from benchmarks.bench.cluster import GENERATOR, agent_roles, non_generator_roles
from schemas import Message, Reply, Turn, decode, encode
from streams.client import OncePerMessage, new_message
from tests.integration.conftest import Worker, Workers
from tests.integration.kafka_io import following, group_members, produce_paced, read_topic

pytestmark = pytest.mark.slow  # minutes each: `pytest -m "not slow"` leaves them out locally; CI runs them

TEXTS = (
    "hi there!",
    "I spent the whole weekend rebuilding an old bicycle with my grandfather",
    "what's the weather like today?",
    "my sister keeps borrowing my clothes without asking and it drives me mad",
    "do you think pineapples dream about being coconuts",
    "the new neighbours play the trombone every night at eleven",
)
# Rates one worker sustains on a 2-core machine shared with other work; with roles, the generator-only worker
# takes more of the cores. At these rates a conversation's next message comes 25-30 s after its last.
RATE_PER_S, ROLES_RATE_PER_S = 12.0, 10.0
CONVERSATIONS = 300
STALL_S = 30.0
JOIN_AFTER_S = 10.0  # load offered to the first worker alone before the second starts
SPLIT_WAIT_S = 240.0  # for the second worker to load its models and hold partitions
SHARED_S = 10.0  # both workers serving before the first is stopped
AFTER_STOP_S = 20.0  # load the survivor answers alone
DRAIN_S = 180.0
LATE_REPEATS_S = 5.0  # after the last reply: repeats still arriving are counted too


@dataclass
class Run:
    """What the platform offered and saw, and when the workers joined and left (seconds from the first send)."""

    messages: list[Message] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    seen: list[tuple[float, Any]] = field(default_factory=list)  # (arrival, banter.replies record)
    marks: dict[str, float] = field(default_factory=dict)
    stop_took_s: float = 0.0


def offered(run: Run) -> Iterator[tuple[bytes, bytes]]:
    """The platform's messages, made as they are sent: conversation ``i % CONVERSATIONS``."""
    for i in itertools.count():
        message = new_message(f"{TEXTS[i % len(TEXTS)]} #{i}", f"rebalance-{i % CONVERSATIONS}", platform="test")
        run.messages.append(message)
        yield message.conversation_id.encode(), encode(message)


def hand_over(workers: Workers, first: Worker, join: Callable[[], Worker], rate: float) -> tuple[Run, Worker]:
    """Offer ``rate`` messages/s to ``first``; mid-load start ``join()``, wait until both hold partitions of
    banter.messages, stop ``first`` (SIGTERM), offer ``AFTER_STOP_S`` more, and wait for every reply."""
    settings, run = first.settings, Run()
    joined: list[Worker] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        async with following(settings, "replies") as seen:
            start = time.monotonic()
            sending = asyncio.create_task(produce_paced(settings, offered(run), rate, stop))
            await asyncio.sleep(JOIN_AFTER_S)
            run.marks["second started"] = time.monotonic() - start
            joined.append(await asyncio.to_thread(join))
            assert joined[0].settings.web_port != first.settings.web_port
            await asyncio.to_thread(joined[0].wait_ready, SPLIT_WAIT_S)
            run.marks["second ready"] = time.monotonic() - start
            await _both_hold_partitions(workers, settings)
            run.marks["group split"] = time.monotonic() - start
            await asyncio.sleep(SHARED_S)
            run.marks["first stopped"] = time.monotonic() - start
            await asyncio.to_thread(first.stop, STALL_S)
            run.stop_took_s = time.monotonic() - start - run.marks["first stopped"]
            await asyncio.sleep(AFTER_STOP_S)
            stop.set()
            run.sent_at = [t - start for t in await sending]
            wanted = {m.message_id for m in run.messages}
            deadline = time.monotonic() + DRAIN_S
            while not wanted <= {decode(r.value, Reply).message_id for _, r in seen} and time.monotonic() < deadline:
                await asyncio.sleep(1.0)
            await asyncio.sleep(LATE_REPEATS_S)
            run.seen = [(t - start, r) for t, r in seen]

    asyncio.run(scenario())
    return run, joined[0]


async def _both_hold_partitions(workers: Workers, settings: Any) -> None:
    """Until the workers' group is stable with two members, each holding partitions of banter.messages."""
    group, last = settings.app_id, ("", [0])
    deadline = time.monotonic() + SPLIT_WAIT_S
    while time.monotonic() < deadline:
        last = await group_members(settings, group, "messages")
        if last[0] == "Stable" and len(last[1]) == 2 and all(last[1]):
            return
        await asyncio.sleep(1.0)
    pytest.fail(f"group {group} never split between two workers: {last}\n{_logs(workers)}")


def check(run: Run, workers: Workers, first: Worker, survivors: list[Worker], label: str) -> None:
    """Print the run's figures, then assert what a platform must see."""
    settings = first.settings
    order = {m.message_id: i for i, m in enumerate(run.messages)}
    texts: dict[str, set[str]] = defaultdict(set)
    records: dict[str, list[str]] = defaultdict(list)  # each reply record of a message, described
    once, delivered, raw = OncePerMessage(), [], 0
    for at, record in run.seen:
        reply = decode(record.value, Reply)
        if reply.message_id in order:
            raw += 1
            texts[reply.message_id].add(reply.text)
            records[reply.message_id].append(
                f"at {at:.1f} s, partition {record.partition}, {reply.source} ({reply.fallback_reason}), "
                f"{reply.latency_ms / 1000:.1f} s after the message: {reply.text!r}"
            )
            if once.first(reply.message_id):
                delivered.append((at, reply))
    missing = sorted(set(order) - set(texts), key=order.__getitem__)
    changed = [f"{mid}: {'; '.join(records[mid])}" for mid, seen in texts.items() if len(seen) > 1]
    start, end = run.sent_at[0], run.sent_at[-1]
    gap, gap_at = _longest_gap([at for at, _ in delivered], start, end)
    waited = max((at - run.sent_at[order[r.message_id]] for at, r in delivered), default=0.0)
    sources = Counter(r.source for _, r in delivered)
    share = sources["fallback"] / max(1, len(delivered))
    turns = [decode(r.value, Turn) for r in asyncio.run(read_topic(settings, "turns", lambda rs: False, 10.0))]
    disorder = _turns_out_of_order(run.messages, turns)
    turned = {turn.message_id for turn in turns}
    marks = ", ".join(f"{name} {at:.1f} s" for name, at in run.marks.items())
    print(
        f"\n{label}: {len(order)} messages offered in {end - start:.1f} s ({len(order) / (end - start):.1f}/s); "
        f"{len(delivered)} answered, {len(missing)} missing; {raw} reply records, {raw - len(delivered)} raw "
        f"duplicates ({len(changed)} with another text); longest gap between replies {gap:.1f} s "
        f"(ending {gap_at:.1f} s); slowest reply {waited:.1f} s; fallback share {share:.1%} "
        f"({', '.join(f'{source} {n}' for source, n in sources.most_common())}); "
        f"{marks}; first stopped in {run.stop_took_s:.1f} s"
    )
    logs = _logs(workers)
    lost = ", ".join(
        f"{mid} (#{order[mid]}, {run.messages[order[mid]].conversation_id}, sent {run.sent_at[order[mid]]:.1f} s, "
        f"{'a' if mid in turned else 'no'} turn record)"
        for mid in missing[:20]
    )
    assert not missing, f"{len(missing)} of {len(order)} messages never got a reply: {lost}\n{marks}\n{logs}"
    assert not changed, "\n".join([f"{len(changed)} repeated replies changed their text:", *changed[:5], marks, logs])
    assert sorted(r.message_id for _, r in delivered) == sorted(order), "a platform's dedupe let a reply through twice"
    assert not disorder, f"turn numbers out of send order in {len(disorder)} conversations: {disorder[:5]}\n{logs}"
    assert gap < STALL_S, f"no reply for {gap:.1f} s up to {gap_at:.1f} s while messages were offered ({marks})\n{logs}"
    assert first.process is not None and first.process.returncode != -signal.SIGKILL, (
        f"the first worker did not stop within {STALL_S:.0f} s of SIGTERM and was killed\n{logs}"
    )
    for worker in survivors:
        assert worker.alive, f"{worker.log_path.name} exited\n{logs}"


def _longest_gap(arrivals: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest time without a new reply within [start, end], and when it ended."""
    points = [start, *sorted(t for t in arrivals if start < t < end), end]
    return max(((b - a, b) for a, b in itertools.pairwise(points)), default=(0.0, start))


def _turns_out_of_order(messages: list[Message], turns: list[Turn]) -> list[str]:
    """Conversations whose messages, in send order, did not get increasing turn numbers (a message's first
    turn record counts; a missing turn record is out of order too)."""
    first: dict[str, int] = {}
    for turn in turns:
        first.setdefault(turn.message_id, turn.turn)
    by_conversation: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for message in messages:
        by_conversation[message.conversation_id].append((message.message_id, first.get(message.message_id, -1)))
    return [
        f"{conversation}: {numbers}"
        for conversation, numbers in by_conversation.items()
        if any(b[1] <= a[1] for a, b in itertools.pairwise(numbers)) or numbers[0][1] < 1
    ]


def _logs(workers: Workers) -> str:
    return "\n".join(
        f"--- {w.log_path.name} (exit {w.process.returncode if w.process else None}) ---\n{w.log_tail(30)}"
        for w in workers.started
    )


def test_a_worker_joining_mid_load_then_the_first_stopping_loses_and_doubles_nothing(worker_factory: Workers) -> None:
    """Worker A alone, B joins the group mid-load, A gets SIGTERM: every message answered once, no stall."""
    first = worker_factory()
    first.wait_ready(timeout_s=240)
    run, second = hand_over(worker_factory, first, worker_factory, RATE_PER_S)
    check(run, worker_factory, first, [second], "join then stop")


def test_with_roles_a_second_non_generator_worker_takes_over_beside_a_generator_only_one(
    worker_factory: Workers,
) -> None:
    """A generator-only worker (its own group: within one, faust would hand it half of every topic's
    partitions) beside an all-but-generator worker R; R2 joins R's group mid-load, R gets SIGTERM."""
    rest = non_generator_roles(agent_roles(), print)
    first = worker_factory(BANTER_ROLES=rest)
    generator = worker_factory(BANTER_ROLES=GENERATOR, BANTER_APP_ID=f"{worker_factory.prefix}-app-{GENERATOR}")
    first.wait_ready(timeout_s=240)
    generator.wait_ready(timeout_s=240)
    run, second = hand_over(worker_factory, first, lambda: worker_factory(BANTER_ROLES=rest), ROLES_RATE_PER_S)
    check(run, worker_factory, first, [second, generator], "roles: join then stop")
