"""The router's state: turns joined with their outputs, replies, and events.

State lives in the changelog-backed ``routing`` table, one value per
conversation: ``{"pending": {message_id: entry}, "done": [message_id, ...]}``.
An entry holds the turn (as a small ``TurnRef``: no history beyond the bot's
last replies), the outputs seen (first one per model wins, so replays are
harmless), when each arrived, and the reply once made. An entry is forgotten
only after Kafka acknowledged its reply (``mark_delivered``). ``done``
remembers recent answered ids so that a replayed turn is never answered twice.

A message past its answer time still waits for the fast models (intent and
retrieval) until ``Context.late_wait_s`` after its deadline: under a backlog it
is answered late from them rather than at once with the fallback line.

Functions here mutate state synchronously and return the records to send, so
that the agent and the deadline timer never interleave half-made changes.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from models.latency import LatencyTracker
from models.policy import PolicyConfig, Seen, Situation, decide, seed_of
from models.selector import load_weights
from schemas import Candidate, Event, ModelOutput, Reply, Turn, TurnRef, encode, to_dict
from schemas.codec import from_obj
from streams.settings import Settings

MODELS = ("intent", "responder", "generator")
FAST = ("intent", "responder")  # the understand step: a late message still waits for these
RECENT_BOT = 3  # bot replies a TurnRef keeps, for the policy's repetition check
DONE_KEPT = 64  # replays only reach back to the last commit (~1 s), so a few dozen ids suffice
FLAG_INTENTS = {"love_declaration": "love_declaration", "best_friend": "love_declaration"}

Entry = dict[str, Any]
Conversation = dict[str, Any]


def context(settings: Settings) -> Context:
    """The router's context, from the settings."""
    accept = settings.accept_quality if settings.accept_quality >= 0 else load_weights().accept_now
    policy = PolicyConfig(canned_confidence=settings.canned_confidence, accept_now=accept)
    return Context(policy, settings.shadow_grace_ms / 1000, Arrivals(quantile=settings.latency_quantile),
                   margin_s=settings.reply_margin_ms / 1000, late_wait_s=settings.late_wait_ms / 1000)


@dataclass
class Outbox:
    """Records a state change produced: replies and events to send."""

    replies: list[Reply] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    def add(self, other: Outbox) -> None:
        """Append ``other``'s records after this box's."""
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
        return {model for model, tracker in trackers
                if len(tracker) >= MIN_SAMPLES and not tracker.stale(PROBE_AFTER_S)
                and max(now, received_at + tracker.estimate()) > deadline_at}  # fmt: skip


PROBE_AFTER_S = 5.0
MIN_SAMPLES = 20


@dataclass
class Context:
    """What every routing step needs: the policy, the shadow grace, live arrival delays, and how
    long before a message's deadline its reply is made (so that it reaches Kafka in the budget)."""

    policy: PolicyConfig
    grace_s: float
    arrivals: Arrivals = field(default_factory=Arrivals)
    margin_s: float = 0.0
    late_wait_s: float = 30.0

    def answer_by(self, turn: dict[str, Any]) -> float:
        """When the router stops waiting for slow models: the message's deadline less the margin."""
        return float(turn["deadline_at"]) - self.margin_s

    def give_up_by(self, turn: dict[str, Any]) -> float:
        """When a late message stops waiting for the fast models and gets the fallback line."""
        return float(turn["deadline_at"]) + self.late_wait_s


def turn_ref(turn: Turn) -> TurnRef:
    """What the router needs of a turn: ids, text, number, times and the bot's last replies."""
    recent = [item.text for item in turn.history if item.speaker == "bot"][-RECENT_BOT:]
    return TurnRef(
        message_id=turn.message_id, conversation_id=turn.conversation_id, user_id=turn.user_id,
        platform=turn.platform, text=turn.text, turn=turn.turn, received_at=turn.received_at,
        deadline_at=turn.deadline_at, recent_bot=recent,
    )  # fmt: skip


def new_conversation() -> Conversation:
    return {"pending": {}, "done": []}


def on_turn(conv: Conversation, turn: Turn, partition: int, ctx: Context) -> Outbox:
    """A turn arrived: open (or complete) its entry and answer if the policy allows."""
    mid = turn.message_id
    if mid in conv["done"]:
        return Outbox()
    entry = conv["pending"].setdefault(mid, _new_entry())
    if entry["turn"] is not None:
        return Outbox()
    entry["turn"], entry["partition"] = to_dict(turn_ref(turn)), partition
    return _advance(conv, mid, ctx, final=False)


def on_output(conv: Conversation, output: ModelOutput, ctx: Context, partition: int | None = None) -> Outbox:
    """A model output arrived (possibly before its turn, possibly after the reply).

    An output carries its turn: when the turn record itself is late or was lost
    between topics in a crash, the output opens the message in its place. An
    understanding counts as two candidates, the intent and the responder.
    """
    mid = output.message_id
    parts = candidates_of(output)
    if mid in conv["done"]:
        return Outbox(late=list(parts))
    entry = conv["pending"].setdefault(mid, _new_entry())
    if entry["turn"] is None and output.turn is not None and partition is not None:
        entry["turn"], entry["partition"] = to_dict(output.turn), partition
    fresh = {model: kept for model, kept in parts.items() if model not in entry["outputs"]}
    if not fresh:
        return Outbox()
    now = time.time()
    for model, kept in fresh.items():
        entry["outputs"][model], entry["arrived"][model] = kept, now
        if entry["turn"] is not None:
            ctx.arrivals.observe(model, now - entry["turn"]["received_at"])
    late = list(fresh) if entry["reply"] is not None else []  # after the reply: shadow data
    box = _advance(conv, mid, ctx, final=False)
    box.late.extend(late)
    return box


INTENT_FIELDS = ("label", "confidence", "in_scope")
REPLY_FIELDS = ("text", "score", "quality")


def candidates_of(output: ModelOutput) -> dict[str, dict[str, Any]]:
    """The candidates an output brings, by model, as the state keeps them (without the turn)."""
    kept = to_dict(output)
    del kept["turn"], kept["versions"]  # the state keeps one copy of the turn, not one per output
    if output.kind != "understanding":
        return {output.model: kept}
    versions = output.versions or {}
    intent = {**kept, **dict.fromkeys(REPLY_FIELDS), "model": "intent", "kind": "intent",
              "version": versions.get("intent", output.version)}  # fmt: skip
    reply = {**kept, **dict.fromkeys(INTENT_FIELDS), "model": "responder", "kind": "reply",
             "version": versions.get("responder", output.version)}  # fmt: skip
    return {"intent": intent, "responder": reply}


def on_due(conv: Conversation, due: Due, ctx: Context) -> Outbox:
    """The timer says a deadline or a grace period has passed."""
    entry = conv["pending"].get(due.message_id)
    if entry is None or entry["turn"] is None:
        return Outbox()
    if due.kind == "deadline":
        return _advance(conv, due.message_id, ctx, final=True)
    entry["graced"] = True  # late outputs no longer wait; the event goes out in turn order
    return _release(conv)


def unsent_replies(conv: Conversation, sent: Callable[[str], bool]) -> list[Reply]:
    """Replies the state records but ``sent(message_id)`` says this process never sent (restored after a crash).

    A reply the state marks delivered is in Kafka already and is not sent again.
    """
    recorded = (entry["reply"] for entry in conv["pending"].values()
                if entry["reply"] is not None and not entry.get("delivered"))  # fmt: skip
    return [from_obj(reply, Reply) for reply in recorded if not sent(reply["message_id"])]


def mark_delivered(conv: Conversation, acked: Callable[[str], bool]) -> bool:
    """Note in the state which replies Kafka has acknowledged, so a restart does not resend them
    and their entries may be forgotten; True when any was newly marked."""
    marked = False
    for mid, entry in conv["pending"].items():
        if entry["reply"] is not None and not entry.get("delivered") and acked(mid):
            entry["delivered"] = marked = True
    return marked


def release(conv: Conversation) -> Outbox:
    """Replies and events that are ready, e.g. after ``mark_delivered`` found new acks."""
    return _release(conv)


def due_times(conv: Conversation, conversation_id: str, ctx: Context) -> list[Due]:
    """What the timer must watch for this conversation's pending entries."""
    out, now = [], time.time()
    for mid, entry in conv["pending"].items():
        if entry["turn"] is None:
            continue
        if entry["decision"] is None:
            answer_by = ctx.answer_by(entry["turn"])
            at = answer_by if now < answer_by else ctx.give_up_by(entry["turn"])
            out.append(Due(at, conversation_id, mid, "deadline"))
        elif entry["reply"] is not None:
            out.append(Due(entry["replied_at"] + ctx.grace_s, conversation_id, mid, "grace"))
    return out


def _new_entry() -> Entry:
    return {"turn": None, "partition": None, "outputs": {}, "arrived": {}, "reply": None,
            "replied_at": None, "decision": None, "graced": False, "delivered": False}  # fmt: skip


def _advance(conv: Conversation, mid: str, ctx: Context, final: bool) -> Outbox:
    entry = conv["pending"][mid]
    if entry["turn"] is not None and entry["decision"] is None:
        now = time.time()
        final = final or now >= ctx.answer_by(entry["turn"])
        if final and not all(m in entry["outputs"] for m in FAST) and now < ctx.give_up_by(entry["turn"]):
            final = False  # late: the fast models are still worth waiting for, the fallback line is not
        decision = decide(_situation(entry), _seen(entry, ctx), ctx.policy, final)
        if decision is not None:
            entry["decision"] = asdict(decision)
    return _release(conv)


def _release(conv: Conversation) -> Outbox:
    """Send decided replies, then finished events, in turn order: none overtakes an earlier one."""
    box = Outbox()
    waiting = sorted((e for e in conv["pending"].values() if e["turn"] is not None),
                     key=lambda e: e["turn"]["turn"])  # fmt: skip
    for entry in waiting:
        if entry["decision"] is None:
            break
        if entry["reply"] is None:
            box.replies.append(_reply(entry))
    fresh = {reply.message_id for reply in box.replies}
    for entry in waiting:
        complete = all(model in entry["outputs"] for model in MODELS)
        if entry["reply"] is None or not (complete or entry["graced"]):
            break
        if entry["turn"]["message_id"] in fresh or not entry.get("delivered"):
            break  # kept until Kafka holds its reply, so that a crash before then can resend it
        box.events.append(_finish(conv, entry["turn"]["message_id"]))
    return box


def _finish(conv: Conversation, mid: str) -> Event:
    entry = conv["pending"].pop(mid)
    conv["done"] = [*conv["done"][-(DONE_KEPT - 1):], mid]
    return _event(entry)


def _situation(entry: Entry) -> Situation:
    turn = entry["turn"]
    return Situation(turn["text"], turn["turn"], tuple(turn["recent_bot"]), seed_of(turn["message_id"]))


def _seen(entry: Entry, ctx: Context | None = None) -> dict[str, Seen]:
    """The outputs so far; with ``ctx``, a model due after the answer time counts as skipped."""
    keys = ("status", "label", "confidence", "in_scope", "text", "score", "reason", "quality")
    seen = {name: Seen(name, **{k: out.get(k) for k in keys}) for name, out in entry["outputs"].items()}
    if ctx is not None:
        turn = entry["turn"]
        # the fast models are always waited for: a late message is answered from them
        slow = [model for model in MODELS if model not in FAST and model not in seen]
        for model in ctx.arrivals.late(turn["received_at"], ctx.answer_by(turn), time.time(), slow):
            seen[model] = Seen(model, "skipped", reason="predicted_late")
    return seen


def _reply(entry: Entry) -> Reply:
    turn, decision, now = entry["turn"], entry["decision"], time.time()
    intent = entry["outputs"].get("intent", {}).get("label")
    reply = Reply(
        message_id=turn["message_id"], conversation_id=turn["conversation_id"],
        user_id=turn["user_id"], platform=turn["platform"], text=decision["text"],
        source=decision["source"], intent=intent, model=decision["model"],
        latency_ms=round((now - turn["received_at"]) * 1000, 3), replied_at=now,
        fallback_reason=decision["fallback_reason"], why=decision["why"] or None,
        late=now > float(turn["deadline_at"]),
    )  # fmt: skip
    entry["reply"], entry["replied_at"] = to_dict(reply), now
    return reply


def _event(entry: Entry) -> Event:
    turn, reply = entry["turn"], entry["reply"]
    intent = entry["outputs"].get("intent", {})
    label = intent.get("label") if intent.get("status") == "ok" else None
    flags = [FLAG_INTENTS[label]] if label in FLAG_INTENTS else []
    return Event(
        message_id=turn["message_id"], conversation_id=turn["conversation_id"],
        platform=turn["platform"], turn=turn["turn"], intent=label,
        intent_confidence=intent.get("confidence"), source=reply["source"],
        fallback_reason=reply["fallback_reason"], latency_ms=reply["latency_ms"],
        candidates=[_candidate(entry, name) for name in MODELS if name in entry["outputs"]],
        flags=flags, at=time.time(),
    )  # fmt: skip


def _candidate(entry: Entry, name: str) -> Candidate:
    out = entry["outputs"][name]
    return Candidate(
        model=name, version=out["version"], kind=out["kind"], status=out["status"],
        latency_ms=out["latency_ms"], picked=(entry["decision"] or {}).get("model") == name,
        late=entry["arrived"][name] > (entry["replied_at"] or float("inf")),
        reason=out.get("reason"), label=out.get("label"), confidence=out.get("confidence"),
        text=out.get("text"), score=out.get("score"), quality=out.get("quality"),
    )  # fmt: skip


def encode_all(box: Outbox) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]]]:
    """(key, value) pairs for the replies and events of ``box``."""
    replies = [(r.conversation_id.encode(), encode(r)) for r in box.replies]
    events = [(e.conversation_id.encode(), encode(e)) for e in box.events]
    return replies, events
