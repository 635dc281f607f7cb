"""Fitting the response selector (``models.selector``): candidates to rate for the turns of
the project's selector dialogues (``models/data/selector_dialogues.json``: the written reply,
a reply from another conversation, retrieval's shortlist, the backchannel reply and the
generator's), and the logistic model and ``accept_now`` fitted on the rated ones
(``models/data/selector_labels.json``), which ship as ``models/data/selector.json``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models import policy, selector
from models.build.dialogue_eval import Bot, Progress
from models.dataset import DATA_DIR, read_json
from models.selector import FEATURES, Weights
from models.types import Dialogue, Proposal, Utterance

FIT_FILE = DATA_DIR / "selector_dialogues.json"
LABELS_FILE = DATA_DIR / "selector_labels.json"
NEUTRAL = Weights((0.0,) * len(FEATURES), 0.0, 1.0, "neutral")
"""Every candidate 0.5: for making the fitting data before any weights exist."""


def fit_conversations(path: Path = FIT_FILE) -> list[tuple[str, list[Utterance]]]:
    """(id, turns) of the selector's fitting conversations, both sides written."""
    data = read_json(path)
    return [(c["id"], [Utterance(t["speaker"], t["text"]) for t in c["turns"]]) for c in data["conversations"]]


def rating_items(bot: Bot, progress: Progress, seed: int = 0) -> list[dict[str, Any]]:
    """Candidates to rate for each user turn of the fitting conversations: the written reply, a
    reply written for another conversation, retrieval's shortlist, the backchannel reply and the
    generator's reply."""
    conversations = fit_conversations()
    all_bot = [(cid, t.text) for cid, turns in conversations for t in turns if t.speaker == "bot"]
    rng = random.Random(seed)
    contexts: list[tuple[str, int, tuple[Utterance, ...], str]] = []
    for cid, turns in conversations:
        for i, t in enumerate(turns):
            if t.speaker == "user" and i + 1 < len(turns):
                contexts.append((cid, i // 2 + 1, tuple(turns[: i + 1]), turns[i + 1].text))
    items: list[dict[str, Any]] = []
    for start in range(0, len(contexts), 32):
        chunk = contexts[start : start + 32]
        progress(f"selector data: turns {start + 1}-{start + len(chunk)} of {len(contexts)}")
        dialogues = [Dialogue(c[2], seed=policy.seed_of(f"{c[0]}:{c[1]}")) for c in chunk]
        _, options = bot.understander.options(dialogues)
        generated = bot.generator.predict(dialogues) if bot.generator is not None else [None] * len(chunk)
        for (cid, turn, history, written), found, gen in zip(chunk, options, generated, strict=True):
            other = rng.choice([text for c, text in all_bot if c != cid])
            base = {"conversation": cid, "turn": turn, "context": [[u.speaker, u.text] for u in history]}
            rows = [("written", Proposal(written, 0.0)), ("other", Proposal(other, 0.0))]
            rank = 0
            for candidate, kind in found:
                rank += kind == "retrieval"
                rows.append((kind if kind != "retrieval" or rank == 1 else f"retrieval-{rank}", candidate))
            if gen is not None:
                rows.append(("generator", gen))
            items += [
                {**base, "source": source, "text": c.text, "score": c.score, "truncated": c.truncated}
                for source, c in rows
            ]
    return items


def kind_of(source: str) -> str:
    """The selector's kind of a rated candidate's source (written replies count as retrieval: the
    persona bank is written the same way)."""
    return source if source in {"generator", "backchannel"} else "retrieval"


def fit_selector(encoder: selector.Encoder, labelled: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Fit the selector's weights on rated candidates (each with ``sensible`` 0/1)."""
    rated = [x for x in labelled if x.get("sensible") is not None]
    dialogues = [Dialogue(tuple(Utterance(s, t) for s, t in x["context"])) for x in rated]
    candidates = [Proposal(x["text"], float(x["score"]), bool(x["truncated"])) for x in rated]
    rows = selector.feature_rows(encoder, dialogues, candidates, [kind_of(x["source"]) for x in rated])
    labels = np.array([int(x["sensible"]) for x in rated])
    weights = fit(rows, labels, [])
    fitted = Weights(tuple(weights["coef"]), weights["intercept"], 1.0)
    quality = fitted.quality(rows)
    by_turn: dict[tuple[str, int], dict[str, float]] = {}
    for x, q in zip(rated, quality, strict=True):
        by_turn.setdefault((x["conversation"], x["turn"]), {})[x["source"]] = float(q)
    pairs = [
        (max(q for source, q in t.items() if source.startswith(("retrieval", "backchannel"))), t["generator"])
        for t in by_turn.values()
        if "retrieval" in t and "generator" in t
    ]
    weights["accept_now"] = accept_threshold(pairs)
    weights["fitted_on"] = {"candidates": len(rated), "sensible": int(labels.sum()), "by_source": _label_counts(rated)}
    weights["train_accuracy"] = round(float(np.mean((quality >= 0.5) == labels)), 3)
    return weights


def _label_counts(rated: Sequence[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for x in rated:
        counts = out.setdefault(x["source"], [0, 0])
        counts[0] += int(x["sensible"])
        counts[1] += 1
    return out


def fit(rows: np.ndarray, labels: np.ndarray, pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """Fit the logistic model on rated candidates, and ``accept_now`` from (retrieval, generator)
    quality pairs of the same turns, computed with the fitted model by the caller's second pass.

    ``pairs`` empty: ``accept_now`` is left at 1.0 (always wait for the generator).
    """
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=1000)
    model.fit(rows, labels)
    return {
        "features": list(FEATURES),
        "coef": [round(float(c), 5) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 5),
        "accept_now": accept_threshold(pairs),
    }


def accept_threshold(pairs: Sequence[tuple[float, float]], beaten_at_most: float = 0.05) -> float:
    """The lowest retrieval quality above which the generator scored higher in at most
    ``beaten_at_most`` of the turns (1.0 when no threshold qualifies)."""
    for threshold in np.round(np.arange(0.3, 1.0, 0.01), 2):
        above = [(r, g) for r, g in pairs if r >= threshold]
        if len(above) >= 5 and sum(g > r for r, g in above) / len(above) <= beaten_at_most:
            return float(threshold)
    return 1.0
