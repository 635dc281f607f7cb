"""How a model agent serves a micro-batch, without Kafka: which turns it runs (skip, degrade,
probe), what a failing model yields, and what is counted, against a fresh metric registry."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from models.latency import PROBE_AFTER_S, PROBE_MAX_S, Degrader, LatencyTracker
from schemas import DeadLetter, ModelOutput, Turn, decode, encode
from streams.gaps import Replayed, ReplayedMessage
from streams.inference import Serving, Stage, dialogue_of, plan, serve
from streams.inputs import Inputs
from streams.metrics import Metrics


def turn(mid: str, budget_s: float = 1.0) -> Turn:
    now = time.time()
    return Turn(mid, "c1", "u1", "web", "so what do you do for fun", now, 1, [], 0.0, now, now + budget_s)


def stage(sheds: bool = True, degrader: Degrader | None = None, per_item_s: float = 0.0) -> Stage:
    tracker = LatencyTracker()
    if per_item_s:
        for _ in range(10):
            tracker.observe(per_item_s)
    payload: Callable[[Any], dict[str, Any]] = lambda text: {"text": text, "score": 1.0, "quality": 0.5}  # noqa: E731
    return Stage(
        "generator", "reply", ("generator",), dialogue_of, payload, sheds=sheds, tracker=tracker, degrader=degrader
    )


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_stage_that_does_not_shed_runs_every_turn_even_late_ones() -> None:
    keep, _ = plan(
        stage(sheds=False, per_item_s=5.0), [turn("a", budget_s=-1.0)], time.time(), Metrics(CollectorRegistry())
    )
    assert keep == [True]


def test_turns_the_model_would_answer_after_their_deadline_are_skipped() -> None:
    turns = [turn("soon", budget_s=0.05), turn("later", budget_s=2.0)]
    keep, reason = plan(stage(per_item_s=0.2), turns, time.time(), Metrics(CollectorRegistry()))
    assert keep == [False, True] and reason == "predicted_miss"


def test_at_the_top_degradation_level_everything_is_skipped_as_degraded() -> None:
    metrics = Metrics(CollectorRegistry())
    degrader = Degrader(max_level=2, level=2)
    keep, reason = plan(stage(degrader=degrader), [turn("a"), turn("b")], time.time(), metrics)
    assert keep[1:] == [False] and reason == "degraded"
    assert sample(metrics, "banter_generator_degradation_level") == 2


def test_a_stale_estimate_gets_one_probe_so_that_it_can_recover() -> None:
    slow = stage(per_item_s=10.0)
    keep, _ = plan(slow, [turn("a"), turn("b")], time.time(), Metrics(CollectorRegistry()))
    assert keep == [False, False]  # fresh and slow: nothing fits
    slow.tracker.observe(10.0, now=time.monotonic() - PROBE_AFTER_S - 1)  # the last sample is old
    keep, _ = plan(slow, [turn("a"), turn("b")], time.time(), Metrics(CollectorRegistry()))
    assert keep == [True, False]


def test_probes_back_off_while_the_model_stays_too_slow_and_come_often_again_once_it_serves() -> None:
    slow, metrics = stage(per_item_s=10.0), Metrics(CollectorRegistry())
    waits = []
    for _ in range(6):  # each probe finds it as slow as before
        waits.append(slow.probe_after_s)
        slow.tracker.observe(10.0, now=time.monotonic() - slow.probe_after_s - 0.5)
        assert plan(slow, [turn("a"), turn("b")], time.time(), metrics)[0] == [True, False]
        slow.tracker.observe(10.0)  # the probe's own sample: still too slow
        assert plan(slow, [turn("c")], time.time(), metrics)[0] == [False]  # no probe until the next wait is over
    assert waits == [PROBE_AFTER_S, 2 * PROBE_AFTER_S, 4 * PROBE_AFTER_S, PROBE_MAX_S, PROBE_MAX_S, PROBE_MAX_S]
    for _ in range(200):  # the load went: the model is fast again
        slow.tracker.observe(0.001)
    assert plan(slow, [turn("d")], time.time(), metrics)[0] == [True]
    assert slow.probe_after_s == PROBE_AFTER_S


class FakeModels:
    """The model service's two calls, with a model that answers or raises."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.version = "v1"

    async def model(self, name: str) -> Any:
        return self

    async def run(self, name: str, call: Callable[[], Any]) -> Any:
        return call()

    def predict(self, inputs: list[Any]) -> list[str]:
        if self.fails:
            raise RuntimeError("model down")
        return [f"reply {i}" for i, _ in enumerate(inputs)]


def run_batch(fails: bool, values: list[bytes]) -> tuple[list[ModelOutput], list[DeadLetter], Metrics]:
    metrics, outputs, letters = Metrics(CollectorRegistry()), [], []

    async def send_output(key: bytes, value: bytes) -> None:
        outputs.append(decode(value, ModelOutput))

    async def send_letter(key: bytes | None, letter: DeadLetter) -> None:
        letters.append(letter)

    serving = Serving(FakeModels(fails), metrics, Inputs(send_letter, metrics), send_output)  # type: ignore[arg-type]
    records = [Replayed(b"c1", value, ReplayedMessage("t.turns", 0, i, time.time())) for i, value in enumerate(values)]
    asyncio.run(serve(stage(sheds=False), serving, records))
    return outputs, letters, metrics


def test_a_model_that_raises_yields_error_outputs_not_a_crash() -> None:
    outputs, letters, metrics = run_batch(fails=True, values=[encode(turn("a")), encode(turn("b"))])
    assert [(o.message_id, o.status, o.reason) for o in outputs] == [
        ("a", "error", "RuntimeError"),
        ("b", "error", "RuntimeError"),
    ]
    assert letters == []
    assert sample(metrics, "banter_model_outputs_total", model="generator", status="error") == 2


@pytest.mark.parametrize("bad", [b"not json", b'{"message_id": "x"}'])
def test_a_bad_turn_is_dead_lettered_and_the_rest_of_the_batch_answered(bad: bytes) -> None:
    outputs, letters, metrics = run_batch(fails=False, values=[encode(turn("a")), bad, encode(turn("b"))])
    assert [(o.message_id, o.status, o.text) for o in outputs] == [("a", "ok", "reply 0"), ("b", "ok", "reply 1")]
    assert all(o.turn is not None and o.turn.message_id == o.message_id for o in outputs)
    ((letter),) = letters
    assert letter.offset == 1 and letter.agent == "generator"
    assert sum(s.value for m in metrics.dead_letters.collect() for s in m.samples if s.name.endswith("_total")) == 1
