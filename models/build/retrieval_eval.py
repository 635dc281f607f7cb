"""How often the retrieval responder answers in a fitting situation, for choosing its
context weights: conversations held in models/data/retrieval_cases.json, each with
the bank tags ("intent" or "intent/situation") a sensible reply may carry.

``python -m models.build.retrieval_eval`` prints the hit rate of a grid of weights of the
bot's last reply and the user's previous message (the message itself weighs 1).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models import registry
from models.config import ModelConfig
from models.dataset import DATA_DIR, read_json
from models.responder import ContextWeights
from models.types import Dialogue, Utterance
from models.understand import Understander

CASES_FILE = DATA_DIR / "retrieval_cases.json"
SEEDS = 5
"""Each case is answered with this many seeds (the seed picks among near-ties)."""
BOT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
USER_WEIGHTS = (0.0, 0.25, 0.5)


@dataclass(frozen=True, slots=True)
class Case:
    """A conversation ending with the user's message, and the tags a fitting reply has."""

    dialogue: Dialogue
    accept: frozenset[str]
    topic_switch: bool = False


def cases(path: Path = CASES_FILE) -> list[Case]:
    """The retrieval cases of ``path``."""

    def one(raw: dict[str, Any]) -> Case:
        turns = [Utterance(speaker, text) for speaker, text in raw["history"]]
        message = Utterance("user", str(raw["message"]))
        return Case(Dialogue((*turns, message)), frozenset(raw["accept"]), bool(raw.get("topic_switch")))

    return [one(raw) for raw in read_json(path)["cases"]]


def hit_rate(understander: Understander, batch: Sequence[Case], weights: ContextWeights) -> float:
    """The share of (case, seed) answers whose reply carries an accepted tag."""
    responder = understander.responder
    kept, responder.weights = responder.weights, weights
    try:
        hits = 0
        for seed in range(SEEDS):
            answers = understander.predict([replace(c.dialogue, seed=seed) for c in batch])
            hits += sum(_fits(responder.tags(a.reply.text), c.accept) for a, c in zip(answers, batch, strict=True))
    finally:
        responder.weights = kept
    return hits / (SEEDS * len(batch))


def _fits(tags: tuple[str, str], accept: frozenset[str]) -> bool:
    intent, situation = tags
    return intent in accept or f"{intent}/{situation}" in accept


def main() -> None:
    """Print the hit rate of each pair of context weights: on all cases, and on the
    topic switches alone (in brackets)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/banter/models").expanduser())
    config = ModelConfig(cache_dir=parser.parse_args().cache_dir)
    served: Understander = registry.load("understand", config)
    understander = Understander(served.intent, served.responder)  # the responder alone, without the selector
    batch = cases()
    switches = [c for c in batch if c.topic_switch]
    print(
        f"{len(batch)} cases ({len(switches)} topic switches) x {SEEDS} seeds;"
        " rows: bot weight, columns: previous user weight"
    )
    print("bot\\user " + " ".join(f"{u:>14.2f}" for u in USER_WEIGHTS))
    for bot in BOT_WEIGHTS:
        rates = [
            (
                hit_rate(understander, batch, ContextWeights(bot, user)),
                hit_rate(understander, switches, ContextWeights(bot, user)),
            )
            for user in USER_WEIGHTS
        ]
        print(f"{bot:>8.2f} " + " ".join(f"{a:>6.3f} ({s:.3f})" for a, s in rates))


if __name__ == "__main__":
    main()
