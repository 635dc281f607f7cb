"""The generator as banter serves it: ms per token at batch 1 and tokens/s at larger batches.

``benchmarks.generator_runtimes`` compares runtimes on full ~139-token prompts. This
measures banter's own configuration of the winner (``models.generator``: CTranslate2 int8,
the persona as a cached static prompt, the conversation's tokens through the decoding
loop so that replies never depend on their batch-mates), on the same 16 everyday
messages, with the model's own stopping (end of turn, or the token cap).

    python -m benchmarks.generator_serving [--batches 1,8,16,32] [--rounds 3]

Writes reports/generator-serving.md. Medians of interleaved rounds; the machine is shared,
so compare rows of one run rather than runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from benchmarks.generator_runtimes import MESSAGES
from models import generator
from models.types import Dialogue, Utterance
from streams.services import model_config
from streams.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,16,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/generator-serving.md"))
    args = parser.parse_args()
    config = dataclasses.replace(model_config(Settings.from_env()), generator_max_time_s=600.0)
    model = generator.load(config)
    dialogues = [Dialogue((Utterance("user", text),)) for text in MESSAGES]
    model.predict(dialogues[:2])  # warm-up
    batches = [int(b) for b in args.batches.split(",")]
    timings: dict[int, list[tuple[float, int]]] = {b: [] for b in batches}
    for round_ in range(args.rounds):
        for size in batches:
            batch = [dialogues[(round_ + i) % len(dialogues)] for i in range(size)]
            before, started = model.tokens_decoded, time.perf_counter()
            model.predict(batch)
            elapsed = time.perf_counter() - started
            tokens = model.tokens_decoded - before
            timings[size].append((elapsed, tokens))
            print(f"round {round_ + 1} batch {size}: {elapsed:.2f} s, {tokens} tokens", flush=True)
    lines = [
        "# The generator as banter serves it",
        "",
        f"{config.generator or 'SmolLM2-135M-Instruct'} ({model.version}), CTranslate2 int8, "
        f"{config.generator_threads} thread(s); replies to {len(MESSAGES)} everyday messages, each stopped by "
        f"the model or at {config.generator_max_new_tokens} tokens; medians of {args.rounds} rounds.",
        "",
        "| batch | s per batch | tokens per batch | ms per token (batch 1) | tokens/s |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for size, runs in timings.items():
        seconds = statistics.median(t for t, _ in runs)
        tokens = statistics.median(n for _, n in runs)
        per_token = f"{seconds / tokens * 1000:.1f}" if size == 1 else ""
        lines.append(f"| {size} | {seconds:.2f} | {tokens:.0f} | {per_token} | {tokens / seconds:.0f} |")
    lines += [
        "",
        "Tokens: the reply tokens decoded (end of turn included, before the reply is cut to two sentences); "
        "the time includes the conversation's prompt tokens.",
        "",
        "Command: `python -m benchmarks.generator_serving`",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
