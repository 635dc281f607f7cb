"""Training the intent head (``models.intent``): logistic regression over sentence embeddings
with an explicit "oos" class from the out-of-scope examples, its temperature and its
out-of-scope threshold, both fitted on out-of-fold scores over the whole training pool so
that no small validation split decides them; held-out metrics; writing the head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.dataset import OOS_LABEL, Example
from models.intent import HEAD_FILE, META_FILE, Encoder, Head, best_in_scope, softmax

C = 16.0
FOLDS = 5
PLATEAU = 0.005
"""Thresholds scoring within this much of the best balanced score form the plateau."""


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


def balanced_scores(correct: np.ndarray, scores: np.ndarray, is_oos: np.ndarray, grid: np.ndarray) -> np.ndarray:
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
    stats = {"temperature": temperature, "threshold": threshold, "cv_oos_auroc": auroc(scores, is_oos)}
    return Head(names, weights, bias, temperature, threshold), stats


def auroc(in_scope_scores: np.ndarray, is_oos: np.ndarray) -> float:
    """AUROC of detecting OOS by a low in-scope score (0.5 = chance)."""
    if is_oos.all() or not is_oos.any():
        return float("nan")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(is_oos, -in_scope_scores))


def evaluate(head: Head, x: np.ndarray, labels: Sequence[str], threshold: float | None = None) -> dict[str, float]:
    """In-scope accuracy, OOS recall/precision and AUROC on labelled embeddings."""
    thr = head.threshold if threshold is None else threshold
    best, scores = head.in_scope_scores(x)
    predicted = np.array([head.labels[i] if s >= thr else OOS_LABEL for i, s in zip(best, scores, strict=True)])
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
    meta = {**meta, "labels": list(head.labels), "temperature": head.temperature, "threshold": head.threshold}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))
