"""Intent head: accuracy against a majority baseline on the held-out split, out-of-scope
rejection, calibrated confidences, labels independent of batch-mates."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from models import dataset, registry
from models.build import intent_training
from models.config import ModelConfig
from models.types import IntentResult

pytestmark = pytest.mark.slow


def held_out() -> tuple[list[str], list[str]]:
    split = dataset.project_split()
    examples = split.test + split.oos_test
    return [t for t, _ in examples], [label for _, label in examples]


def test_head_beats_majority_baseline_by_a_wide_margin(intent_model: Any) -> None:
    texts, labels = held_out()
    in_scope = [(t, g) for t, g in zip(texts, labels, strict=True) if g != dataset.OOS_LABEL]
    majority = Counter(g for _, g in in_scope).most_common(1)[0][1] / len(in_scope)
    results = intent_model.predict([t for t, _ in in_scope])
    accuracy = np.mean([r.label == g for r, (_, g) in zip(results, in_scope, strict=True)])
    assert accuracy > 0.80
    assert accuracy > majority + 0.5


def test_threshold_rejects_out_of_scope(intent_model: Any) -> None:
    split = dataset.project_split()
    results = intent_model.predict([t for t, _ in split.oos_test])
    rejected = np.mean([not r.in_scope and r.label == dataset.OOS_LABEL for r in results])
    assert rejected >= 0.8


def test_out_of_scope_auroc_is_high(built_config: ModelConfig) -> None:
    model = registry.load("intent", built_config)
    texts, labels = held_out()
    metrics = intent_training.evaluate(model.head, model.encoder.encode(texts), labels)
    assert metrics["oos_auroc"] > 0.95


def test_results_are_typed_and_calibrated(intent_model: Any) -> None:
    results = intent_model.predict(["hello there!", "transfer 50 dollars to my savings"])
    assert all(isinstance(r, IntentResult) for r in results)
    assert all(0.0 <= r.confidence <= 1.0 for r in results)
    assert results[0].label == "greeting" and results[0].in_scope
    assert intent_model.predict([]) == []


def test_labels_independent_of_batch_mates(intent_model: Any) -> None:
    texts, _ = held_out()
    sample = texts[:40]
    alone = [intent_model.predict([t])[0] for t in sample]
    batched = intent_model.predict(sample)
    shuffled = intent_model.predict(sample[::-1])[::-1]
    assert [r.label for r in alone] == [r.label for r in batched] == [r.label for r in shuffled]
    assert [r.in_scope for r in alone] == [r.in_scope for r in batched]


def test_threshold_override_changes_version(built_config: ModelConfig) -> None:
    default = registry.load("intent", built_config)
    strict = registry.load("intent", ModelConfig(cache_dir=built_config.cache_dir, oos_threshold=0.999))
    assert strict.version != default.version
    assert not strict.predict(["my cat knocked over my plant"])[0].in_scope


def test_threshold_choice_sits_between_the_score_clusters() -> None:
    rng = np.random.default_rng(0)
    in_scores = rng.uniform(0.6, 1.0, 500)
    oos_scores = rng.uniform(0.0, 0.3, 50)
    scores = np.concatenate([in_scores, oos_scores])
    is_oos = np.array([False] * 500 + [True] * 50)
    threshold = intent_training.choose_threshold(~is_oos, scores, is_oos)
    assert 0.3 <= threshold <= 0.6
