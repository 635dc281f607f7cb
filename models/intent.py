"""The intent head: logistic regression over sentence embeddings, temperature-scaled
confidence, and an out-of-scope threshold chosen on cross-validated scores.

Training adds an explicit "oos" class from the out-of-scope examples; at inference
the in-scope score is the largest calibrated probability of an in-scope intent, and a
message is in scope when that score reaches the threshold. Temperature and threshold
are both fitted on out-of-fold scores over the whole training pool, so no small
validation split decides them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from models.dataset import OOS_LABEL, Example
from models.types import IntentResult

log = logging.getLogger(__name__)

HEAD_FILE = "head.npz"
META_FILE = "intent.json"
RECIPE = "logreg-c16-temp-cv5-balanced-v1"
"""Bump when the training procedure changes, so that old heads become stale."""
C = 16.0
FOLDS = 5
PLATEAU = 0.005
"""Thresholds scoring within this much of the best balanced score form the plateau."""


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


def fit_linear(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression weights and bias."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, max_iter=2000)
    model.fit(x, y)
    return model.coef_.astype(np.float32), model.intercept_.astype(np.float32)


def out_of_fold_logits(x: np.ndarray, y: np.ndarray, n_classes: int, seed: int) -> np.ndarray:
    """Logits of every example from a head that never saw it (stratified k-fold)."""
    from sklearn.model_selection import StratifiedKFold

    logits = np.zeros((len(x), n_classes), dtype=np.float32)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for fit_idx, held_idx in folds.split(x, y):
        weights, bias = fit_linear(x[fit_idx], y[fit_idx])
        logits[held_idx] = x[held_idx] @ weights.T + bias
    return logits


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of ``y``."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        probs = softmax(logits / np.exp(log_t))
        return float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())

    result = minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded")
    return float(np.exp(result.x))


def balanced_scores(correct: np.ndarray, scores: np.ndarray, is_oos: np.ndarray,
                    grid: np.ndarray) -> np.ndarray:
    """Mean of in-scope accuracy (accepted and right) and OOS recall, per threshold."""
    accepted = scores[None, :] >= grid[:, None]
    in_acc = (accepted & correct[None, :])[:, ~is_oos].mean(axis=1)
    oos_recall = (~accepted)[:, is_oos].mean(axis=1)
    return 0.5 * in_acc + 0.5 * oos_recall


def choose_threshold(correct: np.ndarray, scores: np.ndarray, is_oos: np.ndarray) -> float:
    """The median of the near-optimal plateau of the balanced score (robust to noise)."""
    grid = np.linspace(0.0, 1.0, 401)
    balanced = balanced_scores(correct, scores, is_oos, grid)
    plateau = grid[balanced >= balanced.max() - PLATEAU]
    return float(np.median(plateau))


def train(x: np.ndarray, labels: Sequence[str], seed: int = 0) -> tuple[Head, dict[str, float]]:
    """Fit a head on embeddings ``x`` with ``labels`` (OOS examples labelled "oos")."""
    names = tuple(sorted(set(labels)))
    y = np.array([names.index(label) for label in labels])
    logits = out_of_fold_logits(x, y, len(names), seed)
    temperature = fit_temperature(logits, y)
    in_scope = np.array([name != OOS_LABEL for name in names])
    best, scores = best_in_scope(softmax(logits / temperature), in_scope)
    is_oos = np.array([label == OOS_LABEL for label in labels])
    threshold = choose_threshold(best == y, scores, is_oos)
    weights, bias = fit_linear(x, y)
    stats = {"temperature": temperature, "threshold": threshold,
             "cv_oos_auroc": auroc(scores, is_oos)}
    return Head(names, weights, bias, temperature, threshold), stats


def auroc(in_scope_scores: np.ndarray, is_oos: np.ndarray) -> float:
    """AUROC of detecting OOS by a low in-scope score (0.5 = chance)."""
    if is_oos.all() or not is_oos.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_oos, -in_scope_scores))


def decide(head: Head, x: np.ndarray, threshold: float) -> list[IntentResult]:
    """One IntentResult per embedding row."""
    best, scores = head.in_scope_scores(x)
    return [IntentResult(head.labels[i], float(s), True) if s >= threshold
            else IntentResult(OOS_LABEL, float(1.0 - s), False)
            for i, s in zip(best, scores, strict=True)]


def evaluate(head: Head, x: np.ndarray, labels: Sequence[str],
             threshold: float | None = None) -> dict[str, float]:
    """In-scope accuracy, OOS recall/precision and AUROC on labelled embeddings."""
    thr = head.threshold if threshold is None else threshold
    best, scores = head.in_scope_scores(x)
    predicted = np.array([head.labels[i] if s >= thr else OOS_LABEL
                          for i, s in zip(best, scores, strict=True)])
    gold = np.array(labels)
    is_oos = gold == OOS_LABEL
    rejected = predicted == OOS_LABEL
    return {
        "in_scope_accuracy": float((predicted == gold)[~is_oos].mean()),
        "oos_recall": float(rejected[is_oos].mean()) if is_oos.any() else float("nan"),
        "oos_precision": float(is_oos[rejected].mean()) if rejected.any() else float("nan"),
        "oos_auroc": auroc(scores, is_oos),
        "threshold": thr,
        "n_in_scope": int((~is_oos).sum()),
        "n_oos": int(is_oos.sum()),
    }


def examples_xy(encoder: Encoder, examples: Sequence[Example]) -> tuple[np.ndarray, list[str]]:
    """Embeddings and labels of ``examples``."""
    return encoder.encode([t for t, _ in examples]), [label for _, label in examples]


def save(head: Head, out_dir: Path, meta: dict[str, Any]) -> None:
    """Write the head's arrays and its metadata (metadata last: it marks completion)."""
    np.savez(out_dir / HEAD_FILE, weights=head.weights, bias=head.bias)
    meta = {**meta, "labels": list(head.labels), "temperature": head.temperature,
            "threshold": head.threshold}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))


def load_head(out_dir: Path) -> Head:
    """Read a head written by :func:`save`."""
    meta = json.loads((out_dir / META_FILE).read_text())
    arrays = np.load(out_dir / HEAD_FILE)
    return Head(tuple(meta["labels"]), arrays["weights"], arrays["bias"],
                float(meta["temperature"]), float(meta["threshold"]))


class IntentModel:
    """Model[str, IntentResult]: encoder plus head."""

    name = "intent"

    def __init__(self, encoder: Encoder, head: Head, version: str,
                 threshold: float | None = None) -> None:
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
