"""The analytics event of a message carries its candidates' texts with e-mail addresses and phone
numbers redacted; the reply to the user is sent as the model wrote it."""

from __future__ import annotations

from models.policy import PolicyConfig
from schemas import ModelOutput, Turn
from streams import routing

NOW = 1_800_000_000.0
RESPONDER = "ring me on +44 7700 900123, I'm 25"
GENERATOR = "write to ana@example.org before 10:30"


def _output(model: str, **fields: object) -> ModelOutput:
    kind = "intent" if model == "intent" else "reply"
    base = {"status": "ok", "latency_ms": 5.0, "produced_at": NOW}
    return ModelOutput("m1", "c1", model, "v1", kind, **{**base, **fields})  # type: ignore[arg-type]


def test_event_candidates_are_redacted_and_the_reply_is_not() -> None:
    config = routing.RouterConfig(PolicyConfig(accept_now=0.9), 2.0)
    conv = routing.Conversation()
    turn = Turn("m1", "c1", "u1", "web", "how do I reach you", NOW, 1, [], 0.0, NOW, NOW + 1.0)
    routing.on_turn(conv, turn, 0, config, NOW)
    box = routing.Outbox()
    for out in (
        _output("intent", label="hobbies", confidence=0.9, in_scope=True),
        _output("responder", text=RESPONDER, score=0.7, quality=0.7),
        _output("generator", text=GENERATOR, score=-1.0, quality=0.5),
    ):
        routing.mark_delivered(conv, lambda mid: True)
        box.add(routing.on_output(conv, out, config, NOW))
    routing.mark_delivered(conv, lambda mid: True)
    box.add(routing.release(conv, NOW))

    ((reply,), (event,)) = box.replies, box.events
    assert reply.text in {RESPONDER, GENERATOR}  # whichever won, as written
    texts = {c.model: c.text for c in event.candidates}
    assert texts == {
        "intent": None,
        "responder": "ring me on [phone], I'm 25",
        "generator": "write to [email] before 10:30",
    }
