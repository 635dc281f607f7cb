"""Encoder: length-bucket planning, ONNX export parity with transformers, the static int8
export, loading from a Hugging Face-format folder, and embeddings that do not depend on
batch-mates."""

from __future__ import annotations

import math
import random

import numpy as np
import onnx
import pytest

from models import artifacts, encoder
from models.build import encoder_export
from models.config import ModelConfig

slow = pytest.mark.slow

TEXTS = [
    "hi",
    "I love you so much, will you marry me?",
    "what is the weather like in Paris tomorrow afternoon",
    "you are my best friend forever and ever, seriously the best one anyone could have",
    "set an alarm for 6am",
    "lol",
]
MIXED = [*TEXTS, " ".join(TEXTS * 2), "ok", "tell me a story about a dragon who learns to cook pasta"]
"""Lengths from 3 to 92 tokens, so that ``encode`` splits them into several buckets."""
FP32_TOLERANCE = 1e-4
"""Max absolute difference per embedding component, fp32 ONNX vs torch."""
INT8_MIN_COSINE = 0.9


def onnx_encoder(config: ModelConfig, precision: str) -> encoder.OnnxEncoder:
    directory, _ = artifacts.require(config, "encoder")
    return encoder.OnnxEncoder(directory, precision)


def padded_and_real(bucket: list[int], lengths: list[int]) -> tuple[int, int]:
    return len(bucket) * max(lengths[i] for i in bucket), sum(lengths[i] for i in bucket)


@pytest.mark.parametrize("seed", range(20))
def test_plan_buckets_covers_each_index_once_in_length_order(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(2, 100) for _ in range(rng.randint(1, 80))]
    buckets = encoder.plan_buckets(lengths, max_batch=16)
    flat = [i for bucket in buckets for i in bucket]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)


@pytest.mark.parametrize("seed", range(20))
def test_plan_buckets_bounds_padding_and_size(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.choice([rng.randint(2, 12), rng.randint(2, 100)]) for _ in range(rng.randint(1, 80))]
    for bucket in encoder.plan_buckets(lengths, max_batch=16, max_padding=1.25, slack=8):
        padded, real = padded_and_real(bucket, lengths)
        assert len(bucket) <= 16
        assert padded <= 1.25 * real or padded - real <= 8


def test_plan_buckets_keeps_close_lengths_together() -> None:
    assert encoder.plan_buckets([5, 6, 5, 6], max_batch=32, slack=0) == [[0, 2, 1, 3]]
    assert encoder.plan_buckets([3, 100, 4], max_batch=32, slack=0) == [[0, 2], [1]]
    assert encoder.plan_buckets([7] * 5, max_batch=2) == [[0, 1], [2, 3], [4]]


def test_plan_buckets_slack_merges_short_texts() -> None:
    """Two texts of 2 and 4 tokens: 2 padded tokens are worth one session call less."""
    assert encoder.plan_buckets([2, 4], slack=0) == [[0], [1]]
    assert encoder.plan_buckets([2, 4], slack=2) == [[0, 1]]


def test_plan_buckets_without_bound_is_plain_batches() -> None:
    lengths = [9, 2, 50, 3, 7]
    assert encoder.plan_buckets(lengths, max_batch=2, max_padding=math.inf) == [[1, 3], [4, 0], [2]]
    assert encoder.plan_buckets([]) == []


@slow
def test_fp32_export_matches_transformers(encoder_config: ModelConfig) -> None:
    reference = encoder_export.torch_reference(None, TEXTS)
    mine = onnx_encoder(encoder_config, "fp32").encode(TEXTS)
    assert np.abs(mine - reference).max() < FP32_TOLERANCE
    assert (mine * reference).sum(axis=1).min() > 0.99999


@slow
def test_int8_export_stays_close(encoder_config: ModelConfig) -> None:
    reference = encoder_export.torch_reference(None, TEXTS)
    cosine = (onnx_encoder(encoder_config, "int8").encode(TEXTS) * reference).sum(axis=1)
    assert cosine.min() > INT8_MIN_COSINE
    assert cosine.mean() > 0.97


@slow
def test_embeddings_are_unit_norm(encoder_config: ModelConfig) -> None:
    vectors = onnx_encoder(encoder_config, "fp32").encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@slow
def test_empty_batch(encoder_config: ModelConfig) -> None:
    assert onnx_encoder(encoder_config, "fp32").encode([]).shape == (0, 384)


@slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_embedding_independent_of_batch_mates(encoder_config: ModelConfig, precision: str) -> None:
    enc = onnx_encoder(encoder_config, precision)
    alone = np.stack([enc.encode([t])[0] for t in TEXTS])
    together = enc.encode(TEXTS)
    reversed_ = enc.encode(TEXTS[::-1])[::-1]
    assert np.abs(together - alone).max() < 1e-5
    assert np.abs(reversed_ - alone).max() < 1e-5


@slow
def test_loads_from_local_hugging_face_folder(encoder_config: ModelConfig) -> None:
    folder = encoder.resolve_source(None)
    assert (folder / "config.json").is_file()
    by_path = ModelConfig(cache_dir=encoder_config.cache_dir, encoder=str(folder))
    assert encoder.resolve_source(str(folder)) == folder
    assert artifacts.encoder_version(by_path) == artifacts.encoder_version(encoder_config)
    reference = encoder_export.torch_reference(str(folder), TEXTS[:2])
    mine = onnx_encoder(by_path, "fp32").encode(TEXTS[:2])
    assert np.abs(mine - reference).max() < FP32_TOLERANCE


@slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_text_alone_and_in_bucketed_mixed_batch(encoder_config: ModelConfig, precision: str) -> None:
    enc = onnx_encoder(encoder_config, precision)
    lengths = [len(e.ids) for e in enc.tokenizer.encode_batch(MIXED)]
    assert len(encoder.plan_buckets(lengths)) > 1
    alone = np.stack([enc.embed([t], 1)[0] for t in MIXED])
    order = list(range(len(MIXED)))
    random.Random(0).shuffle(order)
    shuffled = enc.encode([MIXED[i] for i in order])
    np.testing.assert_allclose(shuffled, alone[order], atol=1e-5)
    np.testing.assert_allclose(enc.embed(MIXED, 32, max_padding=math.inf), alone, atol=1e-5)


@slow
def test_int8_export_is_static(encoder_config: ModelConfig) -> None:
    """QDQ with ranges fixed at export: every MatMul with weights in the fp32 export reads
    dequantised int8 weights, and nothing quantises at run time."""
    directory, _ = artifacts.require(encoder_config, "encoder")
    fp32 = onnx.load(str(directory / encoder.FP32_FILE)).graph
    weights = {w.name for w in fp32.initializer}
    int8 = onnx.load(str(directory / encoder.INT8_FILE)).graph
    made_by = {out: node.op_type for node in int8.node for out in node.output}
    dequantised = [n for n in int8.node if n.op_type == "MatMul" and made_by.get(n.input[1]) == "DequantizeLinear"]
    assert len(dequantised) == sum(n.op_type == "MatMul" and n.input[1] in weights for n in fp32.node)
    assert not [n for n in int8.node if n.op_type.startswith("Dynamic")]
