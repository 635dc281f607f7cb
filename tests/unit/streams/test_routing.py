"""The router's state machine without Kafka: one reply per message, replays ignored,
late outputs marked, events complete with every candidate. The clock is passed in: nothing sleeps."""

from __future__ import annotations

import time

import pytest

from models import persona
from models.policy import PolicyConfig, Seen
from schemas import ModelOutput, Turn
from streams import routing

CONFIG = PolicyConfig(accept_now=0.9)
GRACE = 2.0
CTX = routing.RouterConfig(CONFIG, GRACE)


class Clock:
    """The time every routing call of a test is given; ``advance`` stands in for waiting."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


clock = Clock()


@pytest.fixture(autouse=True)
def fresh_arrivals() -> None:
    CTX.arrivals = routing.Arrivals()
    clock.now = time.time()


CANNED = sorted(persona.CANNED_INTENTS)[0]


def turn(mid: str = "m1", budget_s: float = 1.0, number: int = 1) -> Turn:
    now = clock.now
    return Turn(mid, "c1", "u1", "web", "so what do you do for fun", now, number, [], 0.0, now, now + budget_s)


def output(model: str, mid: str = "m1", **fields: object) -> ModelOutput:
    kind = "intent" if model == "intent" else "reply"
    base = {"status": "ok", "latency_ms": 5.0, "produced_at": clock.now}
    return ModelOutput(mid, "c1", model, "v1", kind, **{**base, **fields})  # type: ignore[arg-type]


def acked(conv: routing.Conversation, out: ModelOutput, ctx: routing.RouterConfig = CTX) -> routing.Outbox:
    """One router step as the agent takes it, every reply sent so far acknowledged by Kafka."""
    routing.mark_delivered(conv, lambda mid: True)
    return routing.on_output(conv, out, ctx, clock.now)


def all_outputs(conv: routing.Conversation, label: str = "hobbies", confidence: float = 0.9) -> routing.Outbox:
    box = routing.Outbox()
    for out in (
        output("intent", label=label, confidence=confidence, in_scope=True),
        output("responder", text="Fun? I collect compliments.", score=0.7, quality=0.7),
        output("generator", text="i mostly judge people's playlists", score=-1.0, quality=0.5),
    ):
        box.add(acked(conv, out))
    routing.mark_delivered(conv, lambda mid: True)  # the reply the last output decided is acknowledged
    box.add(routing.release(conv, clock.now))
    return box


def test_one_reply_and_one_event_when_everything_arrives() -> None:
    conv = routing.Conversation()
    assert not routing.on_turn(conv, turn(), 0, CTX, clock.now).replies
    box = all_outputs(conv)
    assert len(box.replies) == 1 and len(box.events) == 1
    event = box.events[0]
    assert {c.model for c in event.candidates} == {"intent", "responder", "generator"}
    assert sum(c.picked for c in event.candidates) == 1
    assert conv.pending == {} and conv.done == ["m1"]


def test_outputs_before_the_turn_are_kept() -> None:
    conv = routing.Conversation()
    all_outputs(conv)
    box = routing.on_turn(conv, turn(), 3, CTX, clock.now)
    assert len(box.replies) == 1 and not box.events  # the entry outlives its reply's step (crash safety)
    (grace,) = routing.due_times(conv, "c1", CTX, clock.now)
    assert not routing.on_due(conv, grace, CTX, clock.now).events  # Kafka has not acknowledged the reply yet
    routing.mark_delivered(conv, lambda mid: True)
    assert len(routing.release(conv, clock.now).events) == 1


def test_replayed_turn_and_outputs_are_ignored() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    all_outputs(conv)
    assert not routing.on_turn(conv, turn(), 0, CTX, clock.now).replies
    replay = all_outputs(conv)
    assert not replay.replies and not replay.events
    assert replay.late == ["intent", "responder", "generator"]


def test_canned_answers_before_the_generator_and_marks_it_late() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    box = routing.on_output(conv, output("intent", label=CANNED, confidence=0.99, in_scope=True), CTX, clock.now)
    assert [r.source for r in box.replies] == ["canned"]
    routing.on_output(conv, output("responder", text="hm", score=0.5), CTX, clock.now)
    clock.advance(0.01)
    box = acked(conv, output("generator", text="late words", score=-1.0))
    assert box.late == ["generator"] and not box.replies
    (event,) = box.events
    generator = next(c for c in event.candidates if c.model == "generator")
    assert generator.late and not generator.picked
    assert next(c for c in event.candidates if c.model == "intent").picked


def test_deadline_answers_with_what_is_there() -> None:
    impatient = routing.RouterConfig(CONFIG, GRACE, routing.Arrivals(), late_wait_s=0.0)
    conv = routing.Conversation()
    assert not routing.on_turn(conv, turn(budget_s=0.02), 0, impatient, clock.now).replies
    (due,) = routing.due_times(conv, "c1", impatient, clock.now)
    clock.advance(0.03)
    box = routing.on_due(conv, due, impatient, clock.now)
    (reply,) = box.replies
    assert reply.source == "fallback" and reply.fallback_reason == "deadline"
    (grace,) = routing.due_times(conv, "c1", impatient, clock.now)
    assert grace.kind == "grace"
    routing.mark_delivered(conv, lambda mid: True)
    box = routing.on_due(conv, grace, impatient, clock.now)
    assert len(box.events) == 1 and box.events[0].source == "fallback"


def test_a_late_message_waits_for_the_fast_models_instead_of_the_fallback_line() -> None:
    patient = routing.RouterConfig(CONFIG, GRACE, routing.Arrivals(), late_wait_s=0.2)
    conv = routing.Conversation()
    routing.on_turn(conv, turn(budget_s=0.02, number=9), 0, patient, clock.now)
    clock.advance(0.03)
    (due,) = routing.due_times(conv, "c1", patient, clock.now)
    assert due.at == pytest.approx(conv.pending["m1"].turn.deadline_at + 0.2)  # the give-up time
    assert not routing.on_due(conv, due, patient, clock.now).replies
    assert not routing.on_output(
        conv, output("intent", label="hobbies", confidence=0.9, in_scope=True), patient, clock.now
    ).replies
    box = routing.on_output(
        conv, output("responder", text="Fun? I collect compliments.", score=0.7), patient, clock.now
    )
    (reply,) = box.replies  # the generator is still missing: the late reply comes from retrieval
    assert (reply.source, reply.fallback_reason) == ("retrieval", "deadline")


def test_a_late_message_gets_the_fallback_line_once_it_gives_up() -> None:
    patient = routing.RouterConfig(CONFIG, GRACE, routing.Arrivals(), late_wait_s=0.05)
    conv = routing.Conversation()
    routing.on_turn(conv, turn(budget_s=0.01), 0, patient, clock.now)
    clock.advance(0.08)
    (due,) = routing.due_times(conv, "c1", patient, clock.now)
    (reply,) = routing.on_due(conv, due, patient, clock.now).replies
    assert reply.source == "fallback"


def test_with_a_margin_the_router_answers_that_long_before_the_deadline() -> None:
    margin = routing.RouterConfig(CONFIG, GRACE, routing.Arrivals(), margin_s=0.5)
    conv = routing.Conversation()
    the_turn = turn(budget_s=0.6)
    assert not routing.on_turn(conv, the_turn, 0, margin, clock.now).replies
    (due,) = routing.due_times(conv, "c1", margin, clock.now)
    assert due.at == pytest.approx(the_turn.deadline_at - 0.5)
    clock.advance(0.15)  # past the answer time, well before the deadline: the next output settles it
    routing.on_output(conv, output("intent", label="hobbies", confidence=0.9, in_scope=True), margin, clock.now)
    box = routing.on_output(conv, output("responder", text="Fun? I collect compliments.", score=0.7), margin, clock.now)
    (reply,) = box.replies  # the generator is not waited for
    assert reply.latency_ms < 600 and not reply.late


def test_deadlines_pop_in_order_once() -> None:
    heap = routing.Deadlines()
    heap.add(routing.Due(2.0, "c", "b", "deadline"))
    heap.add(routing.Due(1.0, "c", "a", "deadline"))
    heap.add(routing.Due(1.0, "c", "a", "deadline"))
    assert [d.message_id for d in heap.pop_due(5.0)] == ["a", "b"]
    assert heap.pop_due(5.0) == []


def test_love_declarations_are_flagged() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    box = all_outputs(conv, label="love_declaration")
    assert box.events[0].flags == ["love_declaration"]


def test_a_later_reply_waits_for_the_earlier_one() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn("m1", number=1), 0, CTX, clock.now)
    routing.on_turn(conv, turn("m2", number=2), 0, CTX, clock.now)
    canned = output("intent", mid="m2", label=CANNED, confidence=0.99, in_scope=True)
    assert not routing.on_output(conv, canned, CTX, clock.now).replies  # held behind m1
    box = routing.on_output(
        conv, output("intent", mid="m1", label=CANNED, confidence=0.99, in_scope=True), CTX, clock.now
    )
    assert [r.message_id for r in box.replies] == ["m1", "m2"]


def test_events_go_out_in_turn_order() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn("m1", number=1), 0, CTX, clock.now)
    routing.on_turn(conv, turn("m2", number=2), 0, CTX, clock.now)
    for mid in ("m1", "m2"):
        routing.on_output(conv, output("intent", mid=mid, label=CANNED, confidence=0.99, in_scope=True), CTX, clock.now)
        routing.on_output(conv, output("responder", mid=mid, text="hm", score=0.5), CTX, clock.now)
    box = acked(conv, output("generator", mid="m2", text="later", score=-1.0))
    assert not box.events  # m2 is complete, but m1 still waits for its generator
    box = acked(conv, output("generator", mid="m1", text="now", score=-1.0))
    assert [e.message_id for e in box.events] == ["m1", "m2"]


def test_a_model_predicted_late_is_not_waited_for() -> None:
    for _ in range(20):
        CTX.arrivals.observe("generator", 3.0)  # the generator answers 3 s after arrival
    conv = routing.Conversation()
    routing.on_turn(conv, turn(budget_s=1.0), 0, CTX, clock.now)
    routing.on_output(conv, output("intent", label="hobbies", confidence=0.3, in_scope=True), CTX, clock.now)
    box = routing.on_output(conv, output("responder", text="Fun? I collect compliments.", score=0.7), CTX, clock.now)
    (reply,) = box.replies  # at once, not at the deadline
    assert (reply.source, reply.fallback_reason) == ("retrieval", "skipped")


def test_a_few_slow_samples_do_not_make_a_model_late() -> None:
    for _ in range(routing.MIN_SAMPLES - 1):
        CTX.arrivals.observe("responder", 3.0)  # the slow first inferences after a start
    assert CTX.arrivals.late(time.time(), time.time() + 1.0, time.time()) == set()


def test_replies_restored_after_a_crash_are_found_for_resending() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    (reply,) = routing.on_output(
        conv, output("intent", label=CANNED, confidence=0.99, in_scope=True), CTX, clock.now
    ).replies
    restored = routing.unsent_replies(conv, lambda mid: False)  # a new process has sent nothing
    assert [r.text for r in restored] == [reply.text]
    assert routing.unsent_replies(conv, lambda mid: True) == []


def test_an_entry_is_forgotten_only_once_kafka_acknowledged_its_reply() -> None:
    """A reply must be in Kafka before the state that forgets its entry: never the same step, never unacked."""
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    made = routing.on_output(conv, output("intent", label=CANNED, confidence=0.99, in_scope=True), CTX, clock.now)
    assert len(made.replies) == 1
    routing.mark_delivered(conv, lambda mid: True)  # acked in the same step as the reply: still kept
    assert not routing.release(conv, clock.now).events
    rest = routing.on_output(conv, output("responder", text="Sure.", score=0.7), CTX, clock.now)
    conv.pending["m1"].delivered = False  # as if Kafka had not acked it
    last = routing.on_output(conv, output("generator", text="ok then", score=-1.0), CTX, clock.now)
    assert not rest.events and not last.events and "m1" in conv.pending
    assert routing.mark_delivered(conv, lambda mid: True)
    (event,) = routing.release(conv, clock.now).events
    assert event.message_id == "m1" and conv.pending == {}


def test_a_reply_marked_delivered_is_not_resent_after_a_crash() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    routing.on_output(conv, output("intent", label=CANNED, confidence=0.99, in_scope=True), CTX, clock.now)
    routing.mark_delivered(conv, lambda mid: False)
    assert len(routing.unsent_replies(conv, lambda mid: False)) == 1
    routing.mark_delivered(conv, lambda mid: mid == "m1")
    assert routing.unsent_replies(conv, lambda mid: False) == []


def test_an_output_carrying_its_turn_answers_a_message_whose_turn_record_never_came() -> None:
    conv = routing.Conversation()
    lost = turn()
    ref = routing.turn_ref(lost)
    box = routing.Outbox()
    for out in (
        output("intent", label="hobbies", confidence=0.9, in_scope=True, turn=ref),
        output("responder", text="Fun? I collect compliments.", score=0.7, turn=ref),
        output("generator", text="i mostly judge people's playlists", score=-1.0, turn=ref),
    ):
        step = routing.on_output(conv, out, CTX, clock.now, partition=3)
        box.replies += step.replies
        if out.model == "intent":
            entry = conv.pending["m1"]
            assert entry.turn is not None and entry.turn.message_id == "m1" and entry.partition == 3
            assert entry.outputs["intent"].turn is None  # the state keeps one copy of the turn
    assert [r.message_id for r in box.replies] == ["m1"]
    assert (
        routing.on_turn(conv, lost, 3, CTX, clock.now).replies == []
    )  # the turn record, arriving after all, adds nothing


def understanding(mid: str = "m1", **fields: object) -> ModelOutput:
    base = {
        "status": "ok",
        "latency_ms": 4.0,
        "produced_at": clock.now,
        "versions": {"intent": "vi", "responder": "vr"},
    }
    return ModelOutput(mid, "c1", "understand", "vu", "understanding", **{**base, **fields})  # type: ignore[arg-type]


def test_one_understanding_is_the_intent_and_the_responder_candidates() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    out = understanding(
        label="hobbies", confidence=0.9, in_scope=True, text="Fun? I collect compliments.", score=0.7, quality=0.99
    )
    (reply,) = routing.on_output(
        conv, out, CTX, clock.now
    ).replies  # retrieval good enough: the generator is not awaited
    assert (reply.source, reply.intent) == ("retrieval", "hobbies")
    routing.mark_delivered(conv, lambda mid: True)
    box = acked(conv, output("generator", text="i mostly judge people's playlists", score=-1.0))
    (event,) = box.events
    by_model = {c.model: c for c in event.candidates}
    assert (by_model["intent"].kind, by_model["intent"].version, by_model["intent"].text) == ("intent", "vi", None)
    assert (by_model["responder"].kind, by_model["responder"].version) == ("reply", "vr")
    assert by_model["responder"].picked and by_model["responder"].label is None
    assert by_model["responder"].quality == 0.99


def test_a_replayed_understanding_marks_both_parts_late() -> None:
    conv = routing.Conversation()
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    all_outputs(conv)
    assert routing.on_output(
        conv, understanding(label="hobbies", confidence=0.9, in_scope=True, text="x", score=0.5), CTX, clock.now
    ).late == ["intent", "responder"]


def test_the_policys_view_of_an_output_and_its_sources_are_the_wire_records() -> None:
    """models/ may not import schemas/, so the policy keeps its own types: these hold them equal."""
    import dataclasses
    from typing import get_args

    from models.policy import Source as PolicySource
    from schemas.records import Payload
    from schemas.records import Source as WireSource

    assert tuple(f.name for f in dataclasses.fields(Seen)) == ("model", "status", *Payload.__struct_fields__)
    assert get_args(PolicySource) == get_args(WireSource)


def test_a_conversation_is_forgotten_only_when_nothing_is_pending_and_it_sat_idle() -> None:
    conv = routing.Conversation(active_at=clock.now)
    routing.on_turn(conv, turn(), 0, CTX, clock.now)
    assert not routing.idle(conv, clock.now + 10_000, 600.0)  # a message still waits
    box = all_outputs(conv)
    assert box.events and conv.pending == {}
    assert not routing.idle(conv, clock.now + 599, 600.0)
    assert routing.idle(conv, clock.now + 601, 600.0)
