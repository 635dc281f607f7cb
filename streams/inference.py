"""How a model agent serves one micro-batch of turns.

Decode (bad records dead-lettered), leave out the messages the model would miss
(a skip output with the reason, so the router need not wait), run the rest in
the model's executor, and emit the outputs of each message. A model that raises
yields error outputs, never a crash or a missing output.

A stage may answer for several models at once: the understand step runs the
encoder once and its one output holds the intent head's answer and the
responder's (``parts``). Cheap stages never skip for time: under any backlog a
message late for its deadline is still understood, so the router can answer it
from intent and retrieval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from models.latency import PROBE_AFTER_S, PROBE_MAX_S, Degrader, LatencyTracker, plan_batch
from models.policy import seed_of
from models.types import Dialogue, Utterance
from schemas import ModelOutput, Turn, encode
from schemas.records import Kind
from streams.inputs import Inputs, Record, seconds_since_produced
from streams.metrics import Metrics
from streams.routing import turn_ref
from streams.services import ModelService

log = logging.getLogger(__name__)

Payload = dict[str, Any]
"""An output's fields: ``label``/``confidence``/``in_scope`` for an intent, ``text``/``score`` for a reply."""


@dataclass
class Stage:
    """One model agent's state: the model it serves, its output's kind, and its live latency.

    ``payload`` turns one prediction into the output's fields; ``parts`` names the
    models it answers for (their latency and versions are reported apart). A
    stage with ``sheds`` leaves out messages it would answer after their deadline.
    """

    model: str
    kind: Kind
    parts: tuple[str, ...]
    to_input: Callable[[Turn], Any]
    payload: Callable[[Any], Payload]
    sheds: bool = False
    tracker: LatencyTracker = field(default_factory=LatencyTracker)
    degrader: Degrader | None = None
    max_new_tokens: int = 32  # the generator's cap; halved at degradation level 1
    probe_after_s: float = PROBE_AFTER_S  # doubles while probes find the model still too slow


Send = Callable[[bytes, bytes], Awaitable[Any]]


@dataclass(frozen=True)
class Serving:
    """What every model agent shares: the loaded models, the metrics, the input guard, and the
    send of an output (key, value) to ``banter.outputs``."""

    models: ModelService
    metrics: Metrics
    inputs: Inputs
    send: Send


def dialogue_of(turn: Turn) -> Dialogue:
    """The model-facing view of a turn: its history ending with the user's text."""
    history = tuple(Utterance(item.speaker, item.text) for item in turn.history)
    return Dialogue(history=(*history, Utterance("user", turn.text)), seed=seed_of(turn.message_id))


async def serve(stage: Stage, serving: Serving, records: Sequence[Record]) -> None:
    """Answer one micro-batch of ``banter.turns`` records on ``banter.outputs``."""
    pairs = await serving.inputs.decode_all(records, Turn, stage.model)
    if not pairs:
        return
    turns = [turn for _, turn in pairs]
    model = await serving.models.model(stage.model)
    keep, reason = plan(stage, turns, time.time(), serving.metrics)
    ran = iter(await _infer(stage, serving, model, [t for t, kept in zip(turns, keep, strict=True) if kept]))
    for (record, turn), kept in zip(pairs, keep, strict=True):
        output = next(ran) if kept else _marked(stage, model, turn, "skipped", reason)
        await serving.inputs.guarded(record, stage.model, partial(_emit, stage, serving, record, output))


async def _emit(stage: Stage, serving: Serving, record: Record, output: ModelOutput) -> None:
    await serving.send(output.conversation_id.encode(), encode(output))
    for part in stage.parts:
        serving.metrics.model_outputs.labels(part, output.status).inc()
    serving.metrics.stage_latency.labels(stage.model).observe(seconds_since_produced(record))


def plan(stage: Stage, turns: list[Turn], now: float, metrics: Metrics) -> tuple[list[bool], str]:
    """Which turns to run; the others are skipped with the reason given."""
    if not stage.sheds:
        return [True] * len(turns), ""
    estimate = stage.tracker.estimate()
    keep = plan_batch([turn.deadline_at for turn in turns], now, estimate)
    reason = "predicted_miss"
    if stage.degrader is not None:
        for turn in turns:
            stage.degrader.observe(now + estimate > turn.deadline_at)
        metrics.degradation.set(stage.degrader.level)
        if stage.degrader.level >= stage.degrader.max_level:
            keep, reason = [False] * len(turns), "degraded"
    if turns and not any(keep) and stage.tracker.stale(stage.probe_after_s):
        keep[0] = True  # a probe, so that a stale estimate can recover; its output is shadow data
        stage.probe_after_s = min(PROBE_MAX_S, stage.probe_after_s * 2)
    elif any(keep):  # the model serves again: probe soon whenever it is skipped next
        stage.probe_after_s = PROBE_AFTER_S
    return keep, reason


async def _infer(stage: Stage, serving: Serving, model: Any, turns: list[Turn]) -> list[ModelOutput]:
    if not turns:
        return []
    metrics, started = serving.metrics, time.perf_counter()
    try:
        inputs = [_with_level(stage, stage.to_input(turn)) for turn in turns]
        predictions = await serving.models.run(stage.model, lambda: list(model.predict(inputs)))
    except Exception as exc:  # a model failure becomes error outputs, never a lost message
        log.exception("model failed", extra={"model": stage.model})
        return [_marked(stage, model, turn, "error", type(exc).__name__) for turn in turns]
    per_item = (time.perf_counter() - started) / len(turns)
    stage.tracker.observe(per_item)
    for part, version in _versions(model, stage).items():
        metrics.model_batch_size.labels(part, version).observe(len(turns))
        for _ in turns:
            metrics.model_latency.labels(part, version).observe(per_item)
    return [_ok(stage, model, turn, p, per_item) for turn, p in zip(turns, predictions, strict=True)]


def _with_level(stage: Stage, item: Any) -> Any:
    """At degradation level 1 the generator samples half as many tokens."""
    if stage.degrader is None or stage.degrader.level == 0 or not isinstance(item, Dialogue):
        return item
    cap = max(4, stage.max_new_tokens // 2)
    return Dialogue(item.history, item.intent, item.seed, {**item.options, "max_new_tokens": cap})


def _versions(model: Any, stage: Stage) -> dict[str, str]:
    """The version of each part: a combined model knows each part's own."""
    versions: dict[str, str] = getattr(model, "versions", {})
    return {part: versions.get(part, model.version) for part in stage.parts}


def _output(stage: Stage, model: Any, turn: Turn, latency_ms: float, **fields: Any) -> ModelOutput:
    versions = _versions(model, stage) if len(stage.parts) > 1 else None
    return ModelOutput(
        message_id=turn.message_id,
        conversation_id=turn.conversation_id,
        model=stage.model,
        version=model.version,
        kind=stage.kind,
        latency_ms=round(latency_ms, 3),
        produced_at=time.time(),
        turn=turn_ref(turn),
        versions=versions,
        **fields,
    )


def _ok(stage: Stage, model: Any, turn: Turn, prediction: Any, seconds: float) -> ModelOutput:
    return _output(stage, model, turn, seconds * 1000, status="ok", **stage.payload(prediction))


def _marked(stage: Stage, model: Any, turn: Turn, status: str, reason: str) -> ModelOutput:
    """A skipped or error output, with the reason."""
    return _output(stage, model, turn, 0.0, status=status, reason=reason)
