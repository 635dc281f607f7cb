"""The intent head: logistic regression over sentence embeddings, temperature-scaled
confidence, and an out-of-scope threshold chosen on cross-validated scores.

At inference the in-scope score is the largest calibrated probability of an in-scope
intent, and a message is in scope when that score reaches the threshold. Training (an
explicit "oos" class, temperature and threshold fitted on out-of-fold scores) is
``models.build.intent_training``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from models.dataset import OOS_LABEL
from models.types import IntentResult

log = logging.getLogger(__name__)

HEAD_FILE = "head.npz"
META_FILE = "intent.json"
RECIPE = "logreg-c16-temp-cv5-balanced-v1"
"""Bump when the training procedure (``models.build.intent_training``) changes, so that old
heads become stale."""


class Encoder(Protocol):
    """What the head needs from an encoder."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Head:
    """A trained head: linear weights per label, temperature and threshold."""

    labels: tuple[str, ...]
    weights: np.ndarray
    bias: np.ndarray
    temperature: float
    threshold: float

    @property
    def in_scope_mask(self) -> np.ndarray:
        return np.array([label != OOS_LABEL for label in self.labels])

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities for embeddings ``x``."""
        return softmax((x @ self.weights.T + self.bias) / self.temperature)

    def in_scope_scores(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best in-scope label index and its probability, per row."""
        return best_in_scope(self.probabilities(x), self.in_scope_mask)


def best_in_scope(probs: np.ndarray, in_scope: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index and probability of the most likely in-scope label, per row."""
    masked = np.where(in_scope, probs, -1.0)
    best = masked.argmax(axis=1)
    return best, masked[np.arange(len(probs)), best]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def decide(head: Head, x: np.ndarray, threshold: float) -> list[IntentResult]:
    """One IntentResult per embedding row."""
    best, scores = head.in_scope_scores(x)
    return [
        IntentResult(head.labels[i], float(s), True)
        if s >= threshold
        else IntentResult(OOS_LABEL, float(1.0 - s), False)
        for i, s in zip(best, scores, strict=True)
    ]


def load_head(out_dir: Path) -> Head:
    """Read a head written by ``models.build.intent_training.save``."""
    meta = json.loads((out_dir / META_FILE).read_text())
    arrays = np.load(out_dir / HEAD_FILE)
    return Head(
        tuple(meta["labels"]), arrays["weights"], arrays["bias"], float(meta["temperature"]), float(meta["threshold"])
    )


class IntentModel:
    """Model[str, IntentResult]: encoder plus head."""

    name = "intent"

    def __init__(self, encoder: Encoder, head: Head, version: str, threshold: float | None = None) -> None:
        self.encoder = encoder
        self.head = head
        self.version = version
        self.threshold = head.threshold if threshold is None else threshold

    def predict(self, batch: Sequence[str]) -> list[IntentResult]:
        """Label, calibrated confidence and in-scope flag for each text."""
        if not batch:
            return []
        return self.from_embeddings(self.encoder.encode(list(batch)))

    def from_embeddings(self, x: np.ndarray) -> list[IntentResult]:
        """The same answers for texts already embedded by this model's encoder."""
        return decide(self.head, x, self.threshold)
