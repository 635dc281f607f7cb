"""How a model agent serves one micro-batch of turns.

Decode (bad records dead-lettered), leave out the messages the model would miss
(a skip output with the reason, so the router need not wait), run the rest in
the model's executor, and emit one output per message. A model that raises
yields error outputs, never a crash or a missing output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faust.types import EventT

from models.latency import Degrader, LatencyTracker, plan_batch
from models.policy import seed_of
from models.types import Dialogue, Utterance
from schemas import ModelOutput, Turn, encode
from streams import topics
from streams.app import metrics, settings
from streams.pipeline import decode_events, seconds_since_produced
from streams.services import ModelService

log = logging.getLogger(__name__)


@dataclass
class Stage:
    """One model agent's state: its model's name, kind and live latency."""

    model: str
    kind: str
    to_input: Callable[[Turn], Any]
    tracker: LatencyTracker = field(default_factory=lambda: LatencyTracker(quantile=settings.latency_quantile))
    degrader: Degrader | None = None
    fault: Callable[[], None] | None = None


def dialogue_of(turn: Turn) -> Dialogue:
    """The model-facing view of a turn: its history ending with the user's text."""
    history = tuple(Utterance(item.speaker, item.text) for item in turn.history)
    return Dialogue(history=(*history, Utterance("user", turn.text)), seed=seed_of(turn.message_id))


async def serve(stage: Stage, service: ModelService, events: Sequence[EventT]) -> None:
    """Answer one micro-batch of ``banter.turns`` events on ``banter.outputs``."""
    pairs = await decode_events(events, Turn, stage.model)
    if not pairs:
        return
    turns = [turn for _, turn in pairs]
    model = await service.model(stage.model)
    keep, reasons = _plan(stage, turns)
    ran = [turn for turn, kept in zip(turns, keep, strict=True) if kept]
    results = await _infer(stage, service, model, ran)
    outputs = iter(results)
    for (event, turn), kept, reason in zip(pairs, keep, reasons, strict=True):
        record = next(outputs) if kept else _skip(stage, model.version, turn, reason)
        await topics.outputs.send(key=turn.conversation_id.encode(), value=encode(record))
        metrics.model_outputs.labels(stage.model, record.status).inc()
        metrics.stage_latency.labels(stage.model).observe(seconds_since_produced(event))


PROBE_AFTER_S = 5.0


def _plan(stage: Stage, turns: list[Turn]) -> tuple[list[bool], list[str]]:
    """Which turns to run; the others are skipped with the reason given."""
    now, estimate = time.time(), stage.tracker.estimate()
    keep = plan_batch([turn.deadline_at for turn in turns], now, estimate)
    reason = "predicted_miss"
    if stage.degrader is not None:
        for turn in turns:
            stage.degrader.observe(now + estimate > turn.deadline_at)
        metrics.degradation.set(stage.degrader.level)
        if stage.degrader.level >= stage.degrader.max_level:
            keep, reason = [False] * len(turns), "degraded"
    if not any(keep) and stage.tracker.stale(PROBE_AFTER_S):
        keep[0] = True  # a probe, so that a stale estimate can recover; its output is shadow data
    return keep, [reason] * len(turns)


async def _infer(stage: Stage, service: ModelService, model: Any, turns: list[Turn]) -> list[ModelOutput]:
    if not turns:
        return []
    inputs = [_with_level(stage, stage.to_input(turn)) for turn in turns]
    started = time.perf_counter()
    try:
        predictions = await service.run(stage.model, lambda: _predict(stage, model, inputs))
    except Exception as exc:  # a model failure becomes error outputs, never a lost message
        log.exception("model failed", extra={"model": stage.model})
        return [_error(stage, model.version, turn, type(exc).__name__) for turn in turns]
    per_item = (time.perf_counter() - started) / len(turns)
    stage.tracker.observe(per_item)
    metrics.model_batch_size.labels(stage.model, model.version).observe(len(turns))
    for _ in turns:
        metrics.model_latency.labels(stage.model, model.version).observe(per_item)
    return [_ok(stage, model.version, turn, p, per_item) for turn, p in zip(turns, predictions, strict=True)]


def _predict(stage: Stage, model: Any, inputs: list[Any]) -> list[Any]:
    if stage.fault is not None:
        stage.fault()
    return list(model.predict(inputs))


def _with_level(stage: Stage, item: Any) -> Any:
    """At degradation level 1 the generator samples half as many tokens."""
    if stage.degrader is None or stage.degrader.level == 0 or not isinstance(item, Dialogue):
        return item
    cap = max(4, settings.generator_max_new_tokens // 2)
    return Dialogue(item.history, item.intent, item.seed, {**item.options, "max_new_tokens": cap})


def _base(stage: Stage, version: str, turn: Turn, latency_ms: float) -> dict[str, Any]:
    return {"message_id": turn.message_id, "conversation_id": turn.conversation_id,
            "model": stage.model, "version": version, "kind": stage.kind,
            "latency_ms": round(latency_ms, 3), "produced_at": time.time(), "turn": turn}  # fmt: skip


def _ok(stage: Stage, version: str, turn: Turn, prediction: Any, seconds: float) -> ModelOutput:
    base = _base(stage, version, turn, seconds * 1000)
    if stage.kind == "intent":
        return ModelOutput(**base, status="ok", label=prediction.label,
                           confidence=float(prediction.confidence), in_scope=bool(prediction.in_scope))  # fmt: skip
    return ModelOutput(**base, status="ok", text=prediction.text, score=float(prediction.score))


def _skip(stage: Stage, version: str, turn: Turn, reason: str) -> ModelOutput:
    return ModelOutput(**_base(stage, version, turn, 0.0), status="skipped", reason=reason)


def _error(stage: Stage, version: str, turn: Turn, reason: str) -> ModelOutput:
    return ModelOutput(**_base(stage, version, turn, 0.0), status="error", reason=reason)
