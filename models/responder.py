"""The retrieval responder: the persona response bank, embedded once at build, and a
nearest-reply search by cosine similarity.

Each reply's key mixes the reply's own embedding with the centroid of the training
utterances of the intent it answers ("general" replies use the out-of-scope
centroid), so a user message lands near replies written for its situation, and the
reply text breaks ties inside it. A known intent gives its replies a small bonus.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.dataset import OOS_LABEL, RESPONSES_FILE, Split, read_json
from models.encoder import normalize
from models.intent import Encoder
from models.types import Candidate, Dialogue

KEYS_FILE = "keys.npy"
META_FILE = "responder.json"
RECIPE = "reply0.4-centroid0.6-v1"
"""Bump when keys are computed differently, so that old banks become stale."""
REPLY_WEIGHT = 0.4
GENERAL = "general"
INTENT_BONUS = 0.1
TIE_MARGIN = 0.03
"""Replies scoring within this of the best are interchangeable; the seed picks one."""
MAX_TIES = 3


def bank() -> list[tuple[str, str]]:
    """(situation, reply text) pairs of the persona response bank."""
    data: dict[str, list[str]] = read_json(RESPONSES_FILE)
    return [(situation, text) for situation, texts in data.items() for text in texts]


def centroids(encoder: Encoder, split: Split) -> dict[str, np.ndarray]:
    """Unit centroid of the training utterances per intent, "general" for out-of-scope."""
    examples = split.train + split.oos_train
    vectors = encoder.encode([t for t, _ in examples])
    labels = np.array([GENERAL if label == OOS_LABEL else label for _, label in examples])
    return {label: normalize(vectors[labels == label].mean(axis=0, keepdims=True))[0]
            for label in np.unique(labels)}


def build_keys(encoder: Encoder, split: Split, entries: Sequence[tuple[str, str]]) -> np.ndarray:
    """The search key of every bank entry."""
    replies = encoder.encode([text for _, text in entries])
    centre = centroids(encoder, split)
    situation = np.stack([centre[s] for s, _ in entries])
    return normalize(REPLY_WEIGHT * replies + (1.0 - REPLY_WEIGHT) * situation)


def save(out_dir: Path, keys: np.ndarray, entries: Sequence[tuple[str, str]]) -> None:
    """Write keys and texts (texts last: they mark completion)."""
    np.save(out_dir / KEYS_FILE, keys)
    meta = {"situations": [s for s, _ in entries], "texts": [t for _, t in entries]}
    (out_dir / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=1))


class Responder:
    """Model[Dialogue, Candidate]: the nearest persona reply and its cosine similarity."""

    name = "responder"

    def __init__(self, encoder: Encoder, out_dir: Path, version: str) -> None:
        meta = json.loads((out_dir / META_FILE).read_text())
        self.encoder = encoder
        self.version = version
        self.keys = np.load(out_dir / KEYS_FILE)
        self.texts: list[str] = meta["texts"]
        self.situations = np.array(meta["situations"])
        self._index = {text: i for i, text in enumerate(self.texts)}

    def predict(self, batch: Sequence[Dialogue]) -> list[Candidate]:
        """One reply per dialogue, chosen among near-ties by the dialogue's seed."""
        if not batch:
            return []
        return self.from_embeddings(batch, self.encoder.encode([d.text for d in batch]))

    def from_embeddings(self, batch: Sequence[Dialogue], queries: np.ndarray) -> list[Candidate]:
        """The same replies for dialogues whose user text is already embedded (one row each)."""
        similarity = queries @ self.keys.T
        return [self._choose(d, row) for d, row in zip(batch, similarity, strict=True)]

    def _choose(self, dialogue: Dialogue, similarity: np.ndarray) -> Candidate:
        ranked = similarity + self._bonus(dialogue.intent) - self._used(dialogue)
        order = np.argsort(-ranked, kind="stable")
        ties = [i for i in order[:MAX_TIES] if ranked[i] >= ranked[order[0]] - TIE_MARGIN]
        pick = ties[random.Random(dialogue.seed).randrange(len(ties))]
        return Candidate(self.texts[pick], float(similarity[pick]))

    def _bonus(self, intent: str | None) -> np.ndarray:
        situation = GENERAL if intent == OOS_LABEL else intent
        return np.where(self.situations == situation, INTENT_BONUS, 0.0)

    def _used(self, dialogue: Dialogue) -> np.ndarray:
        """A penalty for replies the bot already gave in this conversation."""
        penalty = np.zeros(len(self.texts))
        said = [self._index[u.text] for u in dialogue.history if u.speaker == "bot" and u.text in self._index]
        penalty[said] = 1.0
        return penalty
