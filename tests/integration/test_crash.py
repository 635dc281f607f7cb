"""Issue 11, point 2, "Worker crash", on the real broker, as a platform sees it.

A platform-like producer (aiokafka, ``acks=all``) offers 5,000 messages over 500
conversations at ``RATE_PER_S``, each conversation's messages in turn order, a
mix of canned intents and chit-chat from the project's own dialogue sets. After
about 2,000 replies the only worker gets ``kill -9``; the platform goes on
sending through the outage, the worker is restarted at once (as an orchestrator
restarts a crashed process) with the same settings, and every reply is read.

What must hold:

- no message without a reply;
- each reply once as a platform sees it (dedupe by ``message_id``), which is
  safe only if every raw repeat carries the same text;
- replies in send order within each conversation, and turn numbers 1, 2, ...;
- history intact: every turn's history ends with the conversation's earlier
  user messages (at least the last ``history_turns // 2``), also for the turns
  made after the restart from the changelog-restored table, and the bot's
  lines in it are the replies the platform saw;

and what is measured against the issue's targets and reported (printed, and
written to ``reports/crash-<time>.md``), not asserted, since an absolute time on
this shared machine measures its other load as much as the recovery:

- the first new reply within ``FIRST_REPLY_WITHIN_S`` of the new worker process
  starting;
- every message that waited through the outage answered by a model (the fast
  ones, canned or retrieval, or the generator if it made it), none with the
  fallback line.

The worker runs with banter's defaults (the session timeout included): the
test checks the crash recovery that a deployment gets.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import Message, Reply, SchemaError, Turn, decode, encode
from streams.client import OncePerMessage, new_message
from streams.kafka import kafka_options, partitions_of
from streams.settings import Settings
from tests.integration.conftest import Worker, Workers
from tests.integration.kafka_io import following, produce_paced

# minutes: `pytest -m "not slow"` leaves it out locally, CI runs it; `make test-crash` runs the kill -9 tests
pytestmark = [pytest.mark.slow, pytest.mark.crash, pytest.mark.timeout(900)]

MESSAGES = 5000
CONVERSATIONS = 500
TURNS = MESSAGES // CONVERSATIONS  # 10 messages per conversation, one every 500 messages
# `banter bench` (benchmarks/results/bench-2026-11-30.md, 2 dedicated cores): one worker sustained 60 msg/s
# (p99 995 ms) and 40 msg/s with p99 524 ms; 80 msg/s was not sustained (69 replies/s). Here the worker shares
# the 2 cores with the broker, this test's producer and reader, and whatever else the machine runs (CI, other
# test sessions), and after the restart it must answer the outage's backlog *and* the new messages: half the
# sustained rate leaves it that headroom. A conversation gets a message every CONVERSATIONS / RATE_PER_S = 17 s.
RATE_PER_S = 30.0
KILL_AFTER_REPLIES = 2000  # about 40% in: the middle of the stream, with the rest sent through the outage
FIRST_REPLY_WITHIN_S = 15.0
REPORT = Path(__file__).resolve().parents[2] / "reports" / "crash.md"
DRAIN_S = 240.0  # after the last send, for the last replies
LATE_REPEATS_S = 5.0  # after the last reply: repeats still arriving are counted too
SEEN_BEFORE_S = 2.0  # a reply the platform saw this long before the next message: the bot's line is in its history
# Before the kill the worker must be seen to sustain the rate (else the timing bounds measure the machine, not the
# crash): replies at >= 90% of it, p99 end to end within twice the 1 s budget, the fallback line for < 1%.
SUSTAINED_P99_S = 2.0

DATA = Path(__file__).resolve().parents[2] / "models" / "data"
CANNED_INTENTS = ("greeting", "weather", "love_declaration", "search_it", "how_are_you", "thanks", "goodbye")


def scripts() -> list[list[str]]:
    """Each conversation's ``TURNS`` user texts: a canned intent to open, chit-chat from the held-out dialogues
    (``eval_dialogues.json``), canned intents among and after it (``intents.json``'s examples): about a third
    canned, as in the benchmark's mix."""
    dialogues = [c["user_turns"] for c in json.loads((DATA / "eval_dialogues.json").read_text())["conversations"]]
    intents = json.loads((DATA / "intents.json").read_text())
    canned = [intents[name] for name in CANNED_INTENTS]
    out = []
    for c in range(CONVERSATIONS):
        chat = dialogues[c % len(dialogues)]

        def intent(k: int, c: int = c) -> str:
            examples = canned[(c + k) % len(canned)]
            return str(examples[(c // len(canned) + 7 * k) % len(examples)])

        texts = [intent(0), *chat[:5], intent(1), *chat[5:6], intent(2), *chat[6:7]]
        texts += [intent(3 + k) for k in range(TURNS - len(texts))]
        out.append(texts[:TURNS])
    return out


@dataclass
class Run:
    """What the platform sent and saw; times are ``time.monotonic()``, the ``*_wall`` ones epoch seconds."""

    messages: list[Message] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    seen: list[tuple[float, Any]] = field(default_factory=list)  # (arrival, banter.replies record)
    start: float = 0.0
    replies_before_kill: int = 0
    killed_at: float = 0.0
    killed_wall: float = 0.0
    restarted_at: float = 0.0
    restarted_wall: float = 0.0
    end: float = 0.0
    group: list[str] = field(default_factory=list)  # the consumer group's state changes around the crash


def offered(run: Run, texts: list[list[str]]) -> Iterator[tuple[bytes, bytes]]:
    """Message ``i`` is turn ``i // CONVERSATIONS`` of conversation ``i % CONVERSATIONS``, made when it is sent."""
    for i in range(MESSAGES):
        c, k = i % CONVERSATIONS, i // CONVERSATIONS
        message = new_message(texts[c][k], f"crash-{c}", user_id=f"user-{c}", platform="test")
        run.messages.append(message)
        yield message.conversation_id.encode(), encode(message)


async def read_all(settings: Settings, topic: str, timeout_s: float = 60.0) -> list[Any]:
    """Every record of one of the worker's topics, from the beginning to its end offsets now."""
    consumer = AIOKafkaConsumer(**kafka_options(settings), enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        name = settings.topic(topic)
        tps = [TopicPartition(name, p) for p in await partitions_of(consumer, name)]
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in tps]) and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def watch_group(settings: Settings, since: float, marks: list[str]) -> None:
    """Note each change of the worker group's state and member count (seconds after ``since``), until cancelled:
    whether the restarted worker waits for the killed one's session to expire before it gets partitions."""
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await admin.start()
    last = None
    try:
        while True:
            try:
                (response,) = await admin.describe_consumer_groups([settings.app_id])
                (group,) = response.to_object()["groups"]
                state = (group["state"], len(group["members"]))
            except Exception as exc:  # a slow broker: note it and ask again
                state = (type(exc).__name__, -1)
            if state != last:
                marks.append(f"{time.monotonic() - since:.1f} s {state[0]} ({state[1]} members)")
                last = state
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def ours(reply: Reply) -> bool:
    return reply.conversation_id.startswith("crash-")  # not the warm-up greetings


class Answered:
    """The message ids of ours answered so far in a growing list of (arrival, record), read incrementally."""

    def __init__(self) -> None:
        self.ids, self._read = set[str](), 0

    def update(self, seen: list[tuple[float, Any]]) -> int:
        for _, record in seen[self._read :]:
            reply = decode(record.value, Reply)
            if ours(reply):
                self.ids.add(reply.message_id)
        self._read = len(seen)
        return len(self.ids)


def crash_mid_stream(workers: Workers, worker: Worker) -> Run:
    """Offer the stream; after ``KILL_AFTER_REPLIES`` replies kill -9 the worker and start it again at once,
    sending all along; return once every message is answered (or ``DRAIN_S`` after the last send)."""
    settings, run, texts = worker.settings, Run(), scripts()

    async def scenario() -> None:
        async with following(settings, "replies") as seen:
            run.start = time.monotonic()
            never = asyncio.Event()  # every message is sent: nothing stops the platform early
            sending = asyncio.create_task(produce_paced(settings, offered(run, texts), RATE_PER_S, never))
            answered = Answered()
            while answered.update(seen) < KILL_AFTER_REPLIES:
                if sending.done():
                    pytest.fail(f"all {MESSAGES} sent, only {len(answered.ids)} answered: the worker cannot keep up")
                await asyncio.sleep(0.05)
            run.replies_before_kill = len(answered.ids)
            run.killed_wall, run.killed_at = time.time(), time.monotonic()
            watching = asyncio.create_task(watch_group(settings, run.killed_at, run.group))
            await asyncio.to_thread(worker.kill)
            run.restarted_wall, run.restarted_at = time.time(), time.monotonic()
            await asyncio.to_thread(workers.restart, worker)
            run.group.append(f"{run.restarted_at - run.killed_at:.1f} s new worker started")
            try:
                run.sent_at = await sending
                deadline = time.monotonic() + DRAIN_S
                while answered.update(seen) < len(run.messages) and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                await asyncio.sleep(LATE_REPEATS_S)
            finally:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
            run.seen, run.end = list(seen), time.monotonic()

    asyncio.run(scenario())
    return run


@dataclass
class Seen:
    """The platform's view: each message's first reply (with its arrival), raw counts, and the order per
    conversation (first appearance on its partition)."""

    first: dict[str, tuple[float, Reply]] = field(default_factory=dict)
    texts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    raw: int = 0
    delivered: list[str] = field(default_factory=list)  # what a platform's dedupe hands on, in arrival order
    records: dict[str, Any] = field(default_factory=dict)  # each message's first reply record
    order: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def platform_view(run: Run) -> Seen:
    view, once = Seen(), OncePerMessage()
    for at, record in sorted(run.seen, key=lambda s: (s[0], s[1].partition, s[1].offset)):
        reply = decode(record.value, Reply)
        if not ours(reply):
            continue
        view.raw += 1
        view.texts[reply.message_id].add(reply.text)
        if once.first(reply.message_id):
            view.delivered.append(reply.message_id)
            view.first[reply.message_id] = (at, reply)
            view.records[reply.message_id] = record
            view.order[reply.conversation_id].append(reply.message_id)
    return view


def history_faults(run: Run, turns: dict[str, list[Turn]], view: Seen, window: int) -> tuple[list[str], float]:
    """Turns whose context is wrong, and the share of turns sent ``SEEN_BEFORE_S`` after the platform saw the
    previous reply whose history holds that reply.

    A turn must carry its place in the conversation (turn k of k), the same context in every record of it (a
    replay after the crash gets its first context back), and a history whose user lines are the conversation's
    earlier messages, the newest ones, in order, and not none after the first turn: a history lost in the
    crash restarts at turn 1 with nothing before it. Its bot lines are the replies the platform saw for
    earlier messages. A window with fewer than ``window // 2`` user lines (bot lines crowding it, e.g. late
    replies) is printed, not failed.
    """
    index = {m.message_id: i for i, m in enumerate(run.messages)}
    by_conversation: dict[str, list[Message]] = defaultdict(list)
    for message in run.messages:
        by_conversation[message.conversation_id].append(message)
    faults: list[str] = []
    short: list[str] = []
    with_bot, expected_bot = 0, 0
    for conversation, messages in by_conversation.items():
        for k, message in enumerate(messages):
            where = f"{conversation} turn {k + 1} (#{index[message.message_id]})"
            records = turns.get(message.message_id, [])
            if not records:
                faults.append(f"{where}: no turn record")
                continue
            contexts = {(t.turn, tuple((h.speaker, h.message_id, h.text) for h in t.history)) for t in records}
            if len(contexts) > 1:
                faults.append(f"{where}: {len(records)} turn records with {len(contexts)} different contexts")
            turn = records[0]
            if turn.turn != k + 1:
                faults.append(f"{where}: numbered turn {turn.turn}")
            users = [(h.message_id, h.text) for h in turn.history if h.speaker == "user"]
            earlier = messages[:k]
            newest = [(m.message_id, m.text) for m in earlier[len(earlier) - len(users) :]] if users else []
            if users != newest or (k and not users):  # wrong, out of order, or gone (a history lost in the crash)
                faults.append(f"{where}: user history {[mid[:8] for mid, _ in users]}, sent before it {len(earlier)}")
            elif len(users) < min(k, window // 2):  # bot lines crowding the window: a figure, not a loss
                short.append(f"{where}: {len(users)} user lines of {len(turn.history)}")
            earlier_ids = {m.message_id for m in earlier}
            for item in turn.history:
                if item.speaker == "bot" and (
                    item.message_id not in earlier_ids or item.text not in view.texts.get(item.message_id, set())
                ):
                    faults.append(f"{where}: bot line for {item.message_id[:8]} is not the reply the platform saw")
            previous = view.first.get(messages[k - 1].message_id) if k else None
            if previous is not None and previous[0] + SEEN_BEFORE_S <= run.sent_at[index[message.message_id]]:
                expected_bot += 1
                with_bot += any(h.speaker == "bot" and h.message_id == messages[k - 1].message_id for h in turn.history)
    if short:
        print(f"crash: {len(short)} turns whose history window held fewer than {window // 2} user lines: {short[:5]}")
    return faults, with_bot / max(1, expected_bot)


def milestones(worker: Worker, since_wall: float) -> str:
    """The restarted worker's start-up, from its log: seconds after its process was started."""
    marks = {
        "first log line": lambda r: True,
        "partitions assigned": lambda r: "Executing _on_partitions_assigned" in r.get("msg", ""),
        "tables recovered": lambda r: "Worker ready" in r.get("msg", ""),
        "models loaded": lambda r: r.get("msg") == "model loaded",
        "worker ready": lambda r: r.get("msg", "").endswith("[^Worker]: Ready"),
    }
    found: dict[str, float] = {}
    lines = worker.log_path.read_text(errors="replace").splitlines() if worker.log_path.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or "ts" not in record:
            continue
        for name, match in marks.items():
            if match(record) and (name == "models loaded" or name not in found):  # the last model, else the first
                found[name] = record["ts"] - since_wall
    return ", ".join(f"{name} {at:.1f} s" for name, at in found.items()) or "no log"


def overtaken(run: Run, view: Seen, conversation: str, sent: list[str]) -> str:
    """The first reply in ``conversation`` that a later one overtook, and the one that overtook it: when each was
    made (``replied_at``) and produced (its Kafka timestamp), from the kill; source, partition and offset."""
    index = {m.message_id: i for i, m in enumerate(run.messages)}
    got = view.order.get(conversation, [])
    position = next((i for i, (mid, want) in enumerate(zip(got, sent, strict=False)) if mid != want), None)
    if position is None:
        return f"{conversation}: {len(got)} of {len(sent)} replies"

    def one(mid: str) -> str:
        reply, record = view.first[mid][1], view.records[mid]
        produced = record.timestamp / 1000 - run.killed_wall
        return (
            f"#{index[mid]} (turn {sent.index(mid) + 1}, sent {run.sent_at[index[mid]] - run.killed_at:+.1f} s) "
            f"made {reply.replied_at - run.killed_wall:+.1f} s, produced {produced:+.1f} s, "
            f"{reply.source}/{reply.fallback_reason}, partition {record.partition} offset {record.offset}"
        )

    return f"{conversation}: {one(got[position])} overtook {one(sent[position])}"


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else (values or [0.0])[0]


def test_kill_minus_9_mid_stream_every_message_answered_once_in_order_with_history(worker_factory: Workers) -> None:
    """5,000 messages over 500 conversations at 30/s; kill -9 after 2,000 replies; restart at once."""
    began = time.monotonic()
    worker = worker_factory()
    worker.wait_ready(timeout_s=240)
    run = crash_mid_stream(worker_factory, worker)
    settings = worker.settings
    restarted = worker_factory.started[-1]
    view = platform_view(run)
    wanted = [m.message_id for m in run.messages]
    index = {mid: i for i, mid in enumerate(wanted)}
    turns: dict[str, list[Turn]] = defaultdict(list)
    for record in asyncio.run(read_all(settings, "turns")):
        try:
            turn = decode(record.value, Turn)
        except SchemaError:
            continue
        if turn.message_id in index:
            turns[turn.message_id].append(turn)

    missing = [mid for mid in wanted if mid not in view.first]
    changed = {mid: texts for mid, texts in view.texts.items() if len(texts) > 1}
    by_conversation: dict[str, list[str]] = defaultdict(list)
    for message in run.messages:
        by_conversation[message.conversation_id].append(message.message_id)
    disorder = [c for c, sent in by_conversation.items() if view.order.get(c, []) != sent]
    faults, bot_share = history_faults(run, turns, view, settings.history_turns)

    # after the restart: the replies to messages not answered before it; the first one made, the first one seen
    new = [(at, reply) for at, reply in view.first.values() if reply.replied_at >= run.restarted_wall]
    first_at = min((at for at, _ in new), default=float("inf"))
    made_s = min((reply.replied_at for _, reply in new), default=float("inf")) - run.restarted_wall
    seen_s = first_at - run.restarted_at
    waited = [  # not answered when the worker was killed, sent before the first new reply
        (mid, view.first[mid][1])
        for mid in wanted
        if mid in view.first and view.first[mid][0] > run.killed_at and run.sent_at[index[mid]] <= first_at
    ]
    fallback = [(mid, reply) for mid, reply in waited if reply.source == "fallback"]
    before = [(at, reply) for at, reply in view.first.values() if at <= run.killed_at]
    e2e = [at - run.sent_at[index[reply.message_id]] for at, reply in before]
    fallback_before = sum(reply.source == "fallback" for _, reply in before) / max(1, len(before))
    all_fallback = sum(reply.source == "fallback" for _, reply in view.first.values())
    span, up_s = run.sent_at[-1] - run.sent_at[0], run.killed_at - run.start
    start_up = milestones(restarted, run.restarted_wall)
    figures = [
        f"{len(wanted)} messages over {CONVERSATIONS} conversations offered at {RATE_PER_S:.0f}/s "
        f"(sent at {len(wanted) / span:.1f}/s over {span:.1f} s)",
        f"before the kill: {run.replies_before_kill} replies in {up_s:.1f} s ({len(before) / up_s:.1f}/s), "
        f"end to end p50 {percentile(e2e, 50):.2f} s, p99 {percentile(e2e, 99):.2f} s, "
        f"fallback line {fallback_before:.1%}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}",
        f"kill -9 at {up_s:.1f} s; new worker started {run.restarted_at - run.killed_at:.1f} s after the kill; "
        f"its first reply made {made_s:.1f} s, seen {seen_s:.1f} s after its start; "
        f"outage (kill to that reply) {first_at - run.killed_at:.1f} s",
        f"new worker: {start_up}",
        f"worker group, from the kill: {'; '.join(run.group)}",
        f"{len(waited)} messages waited through the outage: fallback line for {len(fallback)} "
        f"({len(fallback) / max(1, len(waited)):.1%}), sources {dict(Counter(r.source for _, r in waited))}, "
        f"late {sum(r.late for _, r in waited)}; the fallback lines' latency "
        f"{min((r.latency_ms for _, r in fallback), default=0) / 1000:.1f}-"
        f"{max((r.latency_ms for _, r in fallback), default=0) / 1000:.1f} s (reasons "
        f"{dict(Counter(r.fallback_reason for _, r in fallback))}); fallback over the whole stream {all_fallback} "
        f"({all_fallback / max(1, len(view.first)):.1%})",
        f"{len(view.first)} answered, {len(missing)} missing; {view.raw} reply records, "
        f"{view.raw - len(view.first)} raw duplicates ({len(changed)} with another text); "
        f"{len(disorder)} conversations out of order; {len(faults)} history faults; the previous reply in the "
        f"history of {bot_share:.1%} of the turns sent {SEEN_BEFORE_S:.0f} s after the platform saw it",
        f"test took {time.monotonic() - began:.0f} s",
    ]
    print("\n" + "\n".join(f"crash: {line}" for line in figures))
    logs = "\n".join(f"--- {w.log_path} ---\n{w.log_tail(25)}" for w in worker_factory.started)
    lost = [
        f"#{index[mid]} {run.messages[index[mid]].conversation_id} ({len(turns.get(mid, []))} turns)" for mid in missing
    ]
    assert not missing, f"{len(missing)} of {len(wanted)} messages never got a reply: {lost[:20]}\n{logs}"
    assert not changed, f"{len(changed)} repeated replies changed their text: {list(changed.items())[:3]}"
    assert len(view.delivered) == len(set(view.delivered)) == len(wanted), (
        "a platform's dedupe by message_id let a reply through twice"
    )
    assert not disorder, (
        f"replies out of send order in {len(disorder)} conversations (times from the kill; the new worker started "
        f"{run.restarted_at - run.killed_at:.1f} s after it): "
        + "; ".join(overtaken(run, view, c, by_conversation[c]) for c in disorder[:5])
    )
    assert not faults, f"{len(faults)} turns lost or changed their history: {faults[:10]}"
    # The timing targets are measured and reported, not asserted: on this shared 2-core machine an absolute
    # time measures the machine's other load as much as the recovery (the project's rule for timings).
    sustained = len(before) / up_s >= 0.9 * RATE_PER_S and percentile(e2e, 99) <= SUSTAINED_P99_S
    targets = [
        f"rate sustained before the kill (>= 90% of {RATE_PER_S:.0f}/s, p99 <= {SUSTAINED_P99_S:.0f} s): "
        f"{'yes' if sustained and fallback_before < 0.01 else 'NO: the machine was busy, the timings below overstate'}",
        f"first reply after the restart within {FIRST_REPLY_WITHIN_S:.0f} s of the new worker's start: "
        f"{'met' if made_s <= FIRST_REPLY_WITHIN_S and seen_s <= FIRST_REPLY_WITHIN_S else 'NOT MET'} "
        f"(made {made_s:.1f} s, seen {seen_s:.1f} s)",
        f"no fallback line for the messages that waited through the outage: "
        f"{'met' if not fallback else 'NOT MET'} ({len(fallback)} of {len(waited)})",
    ]
    report = REPORT.parent / f"{REPORT.stem}-{time.strftime('%Y%m%dT%H%M%S')}{REPORT.suffix}"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("# kill -9 mid-stream\n\n" + "\n".join(f"- {line}" for line in figures + targets) + "\n")
    print("\n".join(f"crash target: {line}" for line in targets) + f"\ncrash: report {report}")
