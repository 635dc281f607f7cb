"""Embedding the persona response bank (``models/data/responses.json``) into the search keys
the retrieval responder (``models.responder``) loads.

Each reply's key mixes the reply's own embedding, the centroid of the training
utterances of its intent ("general" replies use the out-of-scope centroid) and the
centroid of its situation's replies (``KeyWeights``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from models.dataset import OOS_LABEL, RESPONSES_FILE, Split, read_json
from models.encoder import normalize
from models.intent import Encoder
from models.responder import GENERAL, KEYS_FILE, META_FILE


class Entry(NamedTuple):
    """One reply of the persona bank with its tags."""

    intent: str
    situation: str
    text: str


@dataclass(frozen=True, slots=True)
class KeyWeights:
    """How much of a reply's key comes from its text, its intent and its situation."""

    reply: float = 0.4
    intent: float = 0.3
    situation: float = 0.3


def bank() -> list[Entry]:
    """Every reply of the persona response bank, in file order."""
    data: dict[str, dict[str, list[str]]] = read_json(RESPONSES_FILE)
    return [
        Entry(intent, situation, text)
        for intent, situations in data.items()
        for situation, texts in situations.items()
        for text in texts
    ]


def centroids(encoder: Encoder, split: Split) -> dict[str, np.ndarray]:
    """Unit centroid of the training utterances per intent, "general" for out-of-scope."""
    examples = split.train + split.oos_train
    vectors = encoder.encode([t for t, _ in examples])
    labels = np.array([GENERAL if label == OOS_LABEL else label for _, label in examples])
    return {label: _mean(vectors[labels == label]) for label in np.unique(labels)}


def situation_centroids(replies: np.ndarray, entries: Sequence[Entry]) -> np.ndarray:
    """Per entry, the unit centroid of the replies that share its intent and situation."""
    tags = np.array([f"{e.intent}/{e.situation}" for e in entries])
    centre = {tag: _mean(replies[tags == tag]) for tag in np.unique(tags)}
    return np.stack([centre[tag] for tag in tags])


def keys_from(
    replies: np.ndarray,
    intent_centre: Mapping[str, np.ndarray],
    entries: Sequence[Entry],
    weights: KeyWeights = KeyWeights(),
) -> np.ndarray:
    """The search keys of embedded bank entries."""
    intents = np.stack([intent_centre[e.intent] for e in entries])
    situations = situation_centroids(replies, entries)
    return normalize(weights.reply * replies + weights.intent * intents + weights.situation * situations)


def build_keys(encoder: Encoder, split: Split, entries: Sequence[Entry]) -> np.ndarray:
    """The search key of every bank entry."""
    replies = encoder.encode([e.text for e in entries])
    return keys_from(replies, centroids(encoder, split), entries)


def save(out_dir: Path, keys: np.ndarray, entries: Sequence[Entry]) -> None:
    """Write keys and tags (tags last: they mark completion)."""
    np.save(out_dir / KEYS_FILE, keys)
    meta = {
        "intents": [e.intent for e in entries],
        "situations": [e.situation for e in entries],
        "texts": [e.text for e in entries],
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1))


def _mean(vectors: np.ndarray) -> np.ndarray:
    return normalize(vectors.mean(axis=0, keepdims=True))[0]
