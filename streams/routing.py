"""The router's state and its transitions: turns joined with their outputs, replies, and events.

State is one ``Conversation`` per conversation: ``pending`` entries by
``message_id`` and the recently ``done`` ids. An ``Entry`` holds the turn (as a
small ``TurnRef``: no history beyond the bot's last replies), the outputs seen
(first one per model wins, so replays are harmless), when each arrived, the
decision, and the reply once made. An entry is forgotten only after Kafka
acknowledged its reply (``mark_delivered``). ``done`` remembers recent answered
ids so that a replayed turn is never answered twice.

A message past its answer time still waits for the fast models (intent and
retrieval) until ``RouterConfig.late_wait_s`` after its deadline: under a backlog
it is answered late from them rather than at once with the fallback line.

Everything here is pure: functions mutate the state they are given, take the
clock as ``now``, and return the records to send (an ``Outbox``). When those are
written and sent is ``streams.delivery``'s job.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from models.latency import PROBE_AFTER_S, LatencyTracker
from models.policy import Decision, PolicyConfig, Seen, Situation, decide, seed_of
from models.redact import redact
from models.selector import load_weights
from schemas import Candidate, Event, ModelOutput, Payload, Reply, Turn, TurnRef, replace
from streams.settings import Settings

MODELS = ("intent", "responder", "generator")
FAST = ("intent", "responder")  # the understand step: a late message still waits for these
RECENT_BOT = 3  # bot replies a TurnRef keeps, for the policy's repetition check
DONE_KEPT = 64  # replays only reach back to the last commit (~1 s), so a few dozen ids suffice
FLAG_INTENTS = {"love_declaration": "love_declaration", "best_friend": "love_declaration"}
MIN_SAMPLES = 20


class Entry(msgspec.Struct):
    """One message the router waits on, or has answered and not yet forgotten."""

    turn: TurnRef | None = None
    partition: int | None = None  # of the message's input records: where its state is written
    outputs: dict[str, ModelOutput] = msgspec.field(default_factory=dict)  # by model, without their turn
    arrived: dict[str, float] = msgspec.field(default_factory=dict)  # by model
    decision: Decision | None = None
    reply: Reply | None = None
    replied_at: float | None = None
    graced: bool = False  # late outputs no longer wait: the event may go
    delivered: bool = False  # Kafka acknowledged the reply


class Conversation(msgspec.Struct):
    """The router's state of one conversation, as the ``routing`` table keeps it."""

    pending: dict[str, Entry] = msgspec.field(default_factory=dict)
    done: list[str] = msgspec.field(default_factory=list)
    partition: int | None = None  # of its input records: where its state, and its tombstone, are written
    active_at: float = 0.0  # the last step that opened it


def idle(conv: Conversation, now: float, idle_s: float) -> bool:
    """Nothing pending and untouched for ``idle_s``: its replay guard (``done``) is no longer needed,
    since replays only reach back to the last commit."""
    return not conv.pending and now - conv.active_at > idle_s


def stored(value: Any) -> Conversation | None:
    """A table value as a ``Conversation``: the object itself, or the plain data a restart restored."""
    if value is None or isinstance(value, Conversation):
        return value
    return msgspec.convert(value, Conversation)


def to_stored(conv: Conversation) -> dict[str, Any]:
    """The conversation as plain data for the changelog."""
    data: dict[str, Any] = msgspec.to_builtins(conv)
    return data


@dataclass
class Outbox:
    """Records a state change produced: replies and events to send."""

    replies: list[Reply] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    def add(self, other: Outbox | None) -> None:
        """Append ``other``'s records after this box's."""
        if other is not None:
            self.replies += other.replies
            self.events += other.events
            self.late += other.late


@dataclass(order=True)
class Due:
    at: float
    conversation_id: str = field(compare=False)
    message_id: str = field(compare=False)
    kind: str = field(compare=False)  # "deadline" or "grace"


class Deadlines:
    """A heap of due times; entries whose message moved on are skipped when popped."""

    def __init__(self) -> None:
        self._heap: list[Due] = []
        self._known: set[tuple[str, str]] = set()

    def add(self, due: Due) -> None:
        if (due.message_id, due.kind) not in self._known:
            self._known.add((due.message_id, due.kind))
            heapq.heappush(self._heap, due)

    def pop_due(self, now: float) -> list[Due]:
        out: list[Due] = []
        while self._heap and self._heap[0].at <= now:
            due = heapq.heappop(self._heap)
            self._known.discard((due.message_id, due.kind))
            out.append(due)
        return out

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._known


class Arrivals:
    """Each model's live delay from a message reaching Kafka to its output reaching the router.

    A model whose p95 delay would land past a message's deadline counts as skipped
    for it at once, so the router answers with what it has instead of waiting:
    DESIGN's "switch between models depending on their answer time".
    """

    def __init__(self, quantile: float = 0.95, window: int = 200) -> None:
        self._trackers = {model: LatencyTracker(window=window, quantile=quantile, prior_s=0.0) for model in MODELS}

    def observe(self, model: str, delay_s: float) -> None:
        if model in self._trackers:
            self._trackers[model].observe(max(0.0, delay_s))

    def late(self, received_at: float, deadline_at: float, now: float, among: Iterable[str] = MODELS) -> set[str]:
        """Models (of ``among``) whose output is predicted after the deadline.

        An estimate from a few samples (the slow first inferences after a start) or
        from long ago is not trusted: a model is then waited for, up to the deadline.
        """
        trackers = ((model, self._trackers[model]) for model in among if model in self._trackers)
        return {
            model
            for model, tracker in trackers
            if len(tracker) >= MIN_SAMPLES
            and not tracker.stale(PROBE_AFTER_S)
            and max(now, received_at + tracker.estimate()) > deadline_at
        }


@dataclass
class RouterConfig:
    """What every routing step needs: the policy, the shadow grace, live arrival delays, and how
    long before a message's deadline its reply is made (so that it reaches Kafka in the budget)."""

    policy: PolicyConfig
    grace_s: float
    arrivals: Arrivals = field(default_factory=Arrivals)
    margin_s: float = 0.0
    late_wait_s: float = 30.0
    idle_s: float = 600.0  # a conversation with nothing pending is forgotten after this long

    @classmethod
    def from_settings(cls, settings: Settings) -> RouterConfig:
        accept = settings.accept_quality if settings.accept_quality >= 0 else load_weights().accept_now
        policy = PolicyConfig(canned_confidence=settings.canned_confidence, accept_now=accept)
        return cls(
            policy,
            settings.shadow_grace_ms / 1000,
            Arrivals(quantile=settings.latency_quantile),
            margin_s=settings.reply_margin_ms / 1000,
            late_wait_s=settings.late_wait_ms / 1000,
            idle_s=settings.routing_idle_s,
        )

    def answer_by(self, turn: TurnRef) -> float:
        """When the router stops waiting for slow models: the message's deadline less the margin."""
        return turn.deadline_at - self.margin_s

    def give_up_by(self, turn: TurnRef) -> float:
        """When a late message stops waiting for the fast models and gets the fallback line."""
        return turn.deadline_at + self.late_wait_s


def turn_ref(turn: Turn) -> TurnRef:
    """What the router needs of a turn: ids, text, number, times and the bot's last replies."""
    recent = [item.text for item in turn.history if item.speaker == "bot"][-RECENT_BOT:]
    return TurnRef(
        message_id=turn.message_id,
        conversation_id=turn.conversation_id,
        user_id=turn.user_id,
        platform=turn.platform,
        text=turn.text,
        turn=turn.turn,
        received_at=turn.received_at,
        deadline_at=turn.deadline_at,
        recent_bot=recent,
    )


def on_turn(conv: Conversation, turn: Turn, partition: int, config: RouterConfig, now: float) -> Outbox:
    """A turn arrived: open (or complete) its entry and answer if the policy allows."""
    mid = turn.message_id
    if mid in conv.done:
        return Outbox()
    entry = conv.pending.setdefault(mid, Entry())
    if entry.turn is not None:
        return Outbox()
    entry.turn, entry.partition = turn_ref(turn), partition
    return _advance(conv, mid, config, now, final=False)


def on_output(
    conv: Conversation, output: ModelOutput, config: RouterConfig, now: float, partition: int | None = None
) -> Outbox:
    """A model output arrived (possibly before its turn, possibly after the reply).

    An output carries its turn: when the turn record itself is late or was lost
    between topics in a crash, the output opens the message in its place. An
    understanding counts as two candidates, the intent and the responder.
    """
    mid = output.message_id
    parts = candidates_of(output)
    if mid in conv.done:
        return Outbox(late=list(parts))
    entry = conv.pending.setdefault(mid, Entry())
    if entry.turn is None and output.turn is not None and partition is not None:
        entry.turn, entry.partition = output.turn, partition
    fresh = {model: kept for model, kept in parts.items() if model not in entry.outputs}
    if not fresh:
        return Outbox()
    for model, kept in fresh.items():
        entry.outputs[model], entry.arrived[model] = kept, now
        if entry.turn is not None:
            config.arrivals.observe(model, now - entry.turn.received_at)
    late = list(fresh) if entry.reply is not None else []  # after the reply: shadow data
    box = _advance(conv, mid, config, now, final=False)
    box.late.extend(late)
    return box


INTENT_FIELDS = dict.fromkeys(("label", "confidence", "in_scope"))
REPLY_FIELDS = dict.fromkeys(("text", "score", "quality"))
PAYLOAD_FIELDS = Payload.__struct_fields__


def payload(output: ModelOutput) -> dict[str, Any]:
    """The output's ``Payload`` fields, by name."""
    return {name: getattr(output, name) for name in PAYLOAD_FIELDS}


def candidates_of(output: ModelOutput) -> dict[str, ModelOutput]:
    """The candidates an output brings, by model, as the state keeps them (without the turn)."""
    kept = replace(output, turn=None, versions=None)  # the state keeps one copy of the turn, not one per output
    if output.kind != "understanding":
        return {output.model: kept}
    versions = output.versions or {}
    intent = replace(
        kept, model="intent", kind="intent", version=versions.get("intent", output.version), **REPLY_FIELDS
    )
    reply = replace(
        kept, model="responder", kind="reply", version=versions.get("responder", output.version), **INTENT_FIELDS
    )
    return {"intent": intent, "responder": reply}


def on_due(conv: Conversation, due: Due, config: RouterConfig, now: float) -> Outbox:
    """The timer says a deadline or a grace period has passed."""
    entry = conv.pending.get(due.message_id)
    if entry is None or entry.turn is None:
        return Outbox()
    if due.kind == "deadline":
        return _advance(conv, due.message_id, config, now, final=True)
    entry.graced = True  # late outputs no longer wait; the event goes out in turn order
    return release(conv, now)


def unsent_replies(conv: Conversation, sent: Callable[[str], bool]) -> list[Reply]:
    """Replies the state records but ``sent(message_id)`` says this process never sent (restored after a crash),
    in turn order.

    A reply the state marks delivered is in Kafka already and is not sent again.
    """
    unsent = [
        entry
        for entry in conv.pending.values()
        if entry.reply is not None and not entry.delivered and not sent(entry.reply.message_id)
    ]
    return [entry.reply for entry in sorted(unsent, key=lambda e: _turn(e).turn) if entry.reply is not None]


def mark_delivered(conv: Conversation, acked: Callable[[str], bool]) -> bool:
    """Note in the state which replies Kafka has acknowledged, so a restart does not resend them
    and their entries may be forgotten; True when any was newly marked."""
    marked = False
    for mid, entry in conv.pending.items():
        if entry.reply is not None and not entry.delivered and acked(mid):
            entry.delivered = marked = True
    return marked


def newly_acked(conv: Conversation, acked: Callable[[str], bool]) -> bool:
    """Whether Kafka acknowledged a reply the state does not mark delivered yet."""
    return any(e.reply is not None and not e.delivered and acked(mid) for mid, e in conv.pending.items())


def due_times(conv: Conversation, conversation_id: str, config: RouterConfig, now: float) -> list[Due]:
    """What the timer must watch for this conversation's pending entries."""
    out = []
    for mid, entry in conv.pending.items():
        if entry.turn is None:
            continue
        if entry.decision is None:
            answer_by = config.answer_by(entry.turn)
            at = answer_by if now < answer_by else config.give_up_by(entry.turn)
            out.append(Due(at, conversation_id, mid, "deadline"))
        elif entry.replied_at is not None:
            out.append(Due(entry.replied_at + config.grace_s, conversation_id, mid, "grace"))
    return out


def partition_of(conv: Conversation) -> int | None:
    """The partition of the conversation's input records, known from any entry."""
    return next((e.partition for e in conv.pending.values() if e.partition is not None), None)


def _advance(conv: Conversation, mid: str, config: RouterConfig, now: float, final: bool) -> Outbox:
    entry = conv.pending[mid]
    if entry.turn is not None and entry.decision is None:
        final = final or now >= config.answer_by(entry.turn)
        if final and not all(m in entry.outputs for m in FAST) and now < config.give_up_by(entry.turn):
            final = False  # late: the fast models are still worth waiting for, the fallback line is not
        entry.decision = decide(_situation(entry.turn), _seen(entry, config, now), config.policy, final)
    return release(conv, now)


def release(conv: Conversation, now: float) -> Outbox:
    """Decided replies, then finished events, in turn order: none overtakes an earlier one."""
    box = Outbox()
    waiting = sorted((e for e in conv.pending.values() if e.turn is not None), key=lambda e: _turn(e).turn)
    for entry in waiting:
        if entry.decision is None:
            break
        if entry.reply is None:
            box.replies.append(_reply(entry, now))
    fresh = {reply.message_id for reply in box.replies}
    for entry in waiting:
        complete = all(model in entry.outputs for model in MODELS)
        if entry.reply is None or not (complete or entry.graced):
            break
        if _turn(entry).message_id in fresh or not entry.delivered:
            break  # kept until Kafka holds its reply, so that a crash before then can resend it
        box.events.append(_finish(conv, _turn(entry).message_id, now))
    return box


def _turn(entry: Entry) -> TurnRef:
    assert entry.turn is not None
    return entry.turn


def _finish(conv: Conversation, mid: str, now: float) -> Event:
    entry = conv.pending.pop(mid)
    conv.done = [*conv.done[-(DONE_KEPT - 1) :], mid]
    return _event(entry, now)


def _situation(turn: TurnRef) -> Situation:
    return Situation(turn.text, turn.turn, tuple(turn.recent_bot), seed_of(turn.message_id))


def _seen(entry: Entry, config: RouterConfig, now: float) -> dict[str, Seen]:
    """The outputs so far; a slow model due after the answer time counts as skipped."""
    seen = {name: Seen(name, out.status, **payload(out)) for name, out in entry.outputs.items()}
    turn = _turn(entry)
    # the fast models are always waited for: a late message is answered from them
    slow = [model for model in MODELS if model not in FAST and model not in seen]
    for model in config.arrivals.late(turn.received_at, config.answer_by(turn), now, slow):
        seen[model] = Seen(model, "skipped", reason="predicted_late")
    return seen


def _reply(entry: Entry, now: float) -> Reply:
    turn, decision = _turn(entry), entry.decision
    assert decision is not None
    intent = entry.outputs.get("intent")
    reply = Reply(
        message_id=turn.message_id,
        conversation_id=turn.conversation_id,
        user_id=turn.user_id,
        platform=turn.platform,
        text=decision.text,
        source=decision.source,
        intent=intent.label if intent is not None else None,
        model=decision.model,
        latency_ms=round((now - turn.received_at) * 1000, 3),
        replied_at=now,
        fallback_reason=decision.fallback_reason,
        why=decision.why or None,
        late=now > turn.deadline_at,
    )
    entry.reply, entry.replied_at = reply, now
    return reply


def _event(entry: Entry, now: float) -> Event:
    turn, reply = _turn(entry), entry.reply
    assert reply is not None
    intent = entry.outputs.get("intent")
    label = intent.label if intent is not None and intent.status == "ok" else None
    flags = [FLAG_INTENTS[label]] if label in FLAG_INTENTS else []
    return Event(
        message_id=turn.message_id,
        conversation_id=turn.conversation_id,
        platform=turn.platform,
        turn=turn.turn,
        intent=label,
        intent_confidence=intent.confidence if intent is not None else None,
        source=reply.source,
        fallback_reason=reply.fallback_reason,
        latency_ms=reply.latency_ms,
        candidates=[_candidate(entry, name) for name in MODELS if name in entry.outputs],
        flags=flags,
        at=now,
    )


def _candidate(entry: Entry, name: str) -> Candidate:
    out = entry.outputs[name]
    return Candidate(
        model=name,
        version=out.version,
        kind=out.kind,
        status=out.status,
        latency_ms=out.latency_ms,
        picked=entry.decision is not None and entry.decision.model == name,
        late=entry.arrived[name] > (entry.replied_at or float("inf")),
        **payload(out) | {"text": redact(out.text)},  # analytics keep no e-mail address or phone number
    )
