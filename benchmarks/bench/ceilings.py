"""Ceilings without Kafka: the models in this process, at the worker's batch sizes.

The non-generative path is what the intent and responder agents run on every
message: ``intent.predict`` and ``responder.predict`` on the same batch, each
encoding the texts (as the workers do now), and, when the models offer
``from_embeddings``, encoding once for both. The encoder alone and the
generator are timed apart.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.bench.results import ModelCeilings
from benchmarks.bench.workload import Planned
from models import registry
from models.types import Dialogue, Utterance
from streams.services import model_config
from streams.settings import Settings

Progress = Callable[[str], None]
MIN_SECONDS = 3.0
GENERATOR_SECONDS = 8.0


def messages_per_second(
    run_batch: Callable[[Sequence[int]], object], count: int, batch: int, seconds: float = MIN_SECONDS
) -> float:
    """Messages/s of ``run_batch`` over index batches of ``count`` items, repeated for ``seconds`` at least."""
    run_batch(range(min(batch, count)))  # warm-up: first-call allocations stay out of the figure
    done, began = 0, time.perf_counter()
    while done == 0 or time.perf_counter() - began < seconds:
        for start in range(0, count, batch):
            run_batch(range(start, min(count, start + batch)))
            done += min(count, start + batch) - start
    return done / (time.perf_counter() - began)


def dialogues(messages: Sequence[Planned], turns: int = 6) -> list[Dialogue]:
    """Dialogues ending with each message, after ``turns`` earlier user and bot turns."""
    out = []
    for i, planned in enumerate(messages):
        earlier = [messages[(i - k) % len(messages)].text for k in range(turns, 0, -1)]
        history = [Utterance("user" if k % 2 == 0 else "bot", text) for k, text in enumerate(earlier)]
        out.append(Dialogue(history=(*history, Utterance("user", planned.text)), seed=i))
    return out


def measure(
    settings: Settings, messages: Sequence[Planned], batch: int, generator_batch: int, progress: Progress
) -> ModelCeilings:
    """Load the models as a worker does and time them on ``messages``."""
    config = model_config(settings)
    texts = [m.text for m in messages]
    dials = dialogues(messages)
    intent, responder = registry.load("intent", config), registry.load("responder", config)
    progress(f"ceilings: models in-process, batch {batch}, {len(texts)} messages")
    found: dict[str, Any] = {
        "encoder_mps": _encoder_only(intent, texts, batch),
        "nongen_mps": messages_per_second(
            lambda ix: (intent.predict([texts[i] for i in ix]), responder.predict([dials[i] for i in ix])),
            len(texts),
            batch,
        ),
        "nongen_shared_mps": _shared(intent, responder, texts, dials, batch),
    }
    progress("ceilings: " + ", ".join(f"{k} {v:.1f}" for k, v in found.items() if v is not None))
    try:
        generator = registry.load("generator", config)
        found["generator_mps"] = messages_per_second(
            lambda ix: generator.predict([dials[i] for i in ix]),
            min(len(dials), 4 * generator_batch),
            generator_batch,
            GENERATOR_SECONDS,
        )
    except Exception as exc:  # a missing generator leaves its ceiling out, not the others
        progress(f"ceilings: no generator ({exc})")
        return ModelCeilings(batch=batch, error=f"generator: {exc}", **found)
    progress(f"ceilings: generator {found['generator_mps']:.1f} msg/s at batch {generator_batch}")
    return ModelCeilings(batch=batch, generator_batch=generator_batch, **found)


def _encoder_only(intent: Any, texts: list[str], batch: int) -> float | None:
    """The sentence encoder alone, if the intent model shows it."""
    encoder = getattr(intent, "encoder", None)
    if encoder is None:
        return None
    return messages_per_second(lambda ix: encoder.encode([texts[i] for i in ix]), len(texts), batch)


def _shared(intent: Any, responder: Any, texts: list[str], dials: list[Dialogue], batch: int) -> float | None:
    """Encode once, then both heads, if the models allow it."""
    needed = ((intent, "encoder"), (intent, "from_embeddings"), (responder, "from_embeddings"))
    if not all(hasattr(model, attribute) for model, attribute in needed):
        return None

    def run(ix: Sequence[int]) -> None:
        x = intent.encoder.encode([texts[i] for i in ix])
        intent.from_embeddings(x)
        responder.from_embeddings([dials[i] for i in ix], x)

    return messages_per_second(run, len(texts), batch)
