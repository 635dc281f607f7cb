"""Encoder: ONNX export parity with transformers, loading from a Hugging Face-format
folder, and embeddings that do not depend on batch-mates."""

from __future__ import annotations

import numpy as np
import pytest

from models import artifacts, encoder
from models.config import ModelConfig

pytestmark = pytest.mark.slow

TEXTS = [
    "hi",
    "I love you so much, will you marry me?",
    "what is the weather like in Paris tomorrow afternoon",
    "you are my best friend forever and ever, seriously the best one anyone could have",
    "set an alarm for 6am",
    "lol",
]
FP32_TOLERANCE = 1e-4
"""Max absolute difference per embedding component, fp32 ONNX vs torch."""
INT8_MIN_COSINE = 0.9


def onnx(config: ModelConfig, precision: str) -> encoder.OnnxEncoder:
    directory, _ = artifacts.require(config, "encoder")
    return encoder.OnnxEncoder(directory, precision)


def test_fp32_export_matches_transformers(encoder_config: ModelConfig) -> None:
    reference = encoder.torch_reference(None, TEXTS)
    mine = onnx(encoder_config, "fp32").encode(TEXTS)
    assert np.abs(mine - reference).max() < FP32_TOLERANCE
    assert (mine * reference).sum(axis=1).min() > 0.99999


def test_int8_export_stays_close(encoder_config: ModelConfig) -> None:
    reference = encoder.torch_reference(None, TEXTS)
    cosine = (onnx(encoder_config, "int8").encode(TEXTS) * reference).sum(axis=1)
    assert cosine.min() > INT8_MIN_COSINE
    assert cosine.mean() > 0.97


def test_embeddings_are_unit_norm(encoder_config: ModelConfig) -> None:
    vectors = onnx(encoder_config, "fp32").encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_batch(encoder_config: ModelConfig) -> None:
    assert onnx(encoder_config, "fp32").encode([]).shape == (0, 384)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_embedding_independent_of_batch_mates(encoder_config: ModelConfig,
                                             precision: str) -> None:
    enc = onnx(encoder_config, precision)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    together = enc.encode(TEXTS)
    reversed_ = enc.encode(TEXTS[::-1])[::-1]
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(reversed_ - alone).max() < 1e-5


def test_loads_from_local_hugging_face_folder(encoder_config: ModelConfig) -> None:
    folder = encoder.resolve_source(None)
    assert (folder / "config.json").is_file()
    by_path = ModelConfig(cache_dir=encoder_config.cache_dir, encoder=str(folder))
    assert encoder.resolve_source(str(folder)) == folder
    assert artifacts.encoder_version(by_path) == artifacts.encoder_version(encoder_config)
    reference = encoder.torch_reference(str(folder), TEXTS[:2])
    mine = onnx(by_path, "fp32").encode(TEXTS[:2])
    assert np.abs(mine - reference).max() < FP32_TOLERANCE
