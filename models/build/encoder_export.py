"""The sentence encoder's export: the source model (``models.encoder.resolve_source``) to
ONNX fp32 and static int8 calibrated on training utterances, with its tokenizer and the
metadata ``models.encoder.OnnxEncoder`` reads; and torch's own embeddings, for parity checks.
Needs torch, transformers and onnx.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder import (
    FP32_FILE,
    INT8_FILE,
    META_FILE,
    load_tokenizer,
    normalize,
    padded_inputs,
    pool,
    resolve_source,
)

Progress = Callable[[str], None]


def pooling_mode(source: Path) -> str:
    """ "mean" or "cls", from the sentence-transformers pooling config (mean if absent)."""
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


def export(spec: str | None, out_dir: Path, progress: Progress, calibration: Sequence[str]) -> None:
    """Export ``spec`` to ``out_dir``: fp32 ONNX, static int8 ONNX calibrated on the texts
    ``calibration``, tokenizer, metadata (written last: it marks a complete export)."""
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
            _hidden_state_module(model, inputs),
            args,
            str(out_dir / FP32_FILE),
            input_names=inputs,
            output_names=["last_hidden_state"],
            dynamic_axes={**{n: {0: "batch", 1: "seq"} for n in inputs}, "last_hidden_state": {0: "batch", 1: "seq"}},
            opset_version=17,
            dynamo=False,
        )
    tokenizer.save_pretrained(out_dir)
    length = max_length(source, tokenizer, model.config)
    progress(f"encoder: quantising to static int8, calibrated on {len(calibration)} utterances")
    feeds = calibration_feeds(load_tokenizer(out_dir, length), inputs, calibration)
    quantize_static_int8(out_dir / FP32_FILE, out_dir / INT8_FILE, feeds)
    meta = {
        "inputs": inputs,
        "pooling": pooling_mode(source),
        "max_length": length,
        "dim": int(model.config.hidden_size),
        "source": str(spec or "packaged"),
    }
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


def quantize_dynamic_int8(fp32: Path, int8: Path) -> None:
    """onnxruntime dynamic quantisation: int8 weights, activations quantised per batch (so a
    message's embedding depends on its batch-mates; kept for the benchmark's comparison).

    Per-channel weights with reduced range keep the embeddings closest to fp32 on
    this model (plain per-tensor int8 drops the cosine to fp32 to about 0.86).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


def quantize_static_int8(fp32: Path, int8: Path, feeds: Iterable[dict[str, np.ndarray]]) -> None:
    """onnxruntime static quantisation (QDQ): activation ranges fixed at build time from ``feeds``.

    Fixed ranges make a message's embedding independent of its batch-mates. Only the
    inputs of the MatMuls with weights are quantised (int8 per-channel weights, uint8
    activations); their outputs stay float, so that onnxruntime fuses each into the
    MatMulIntegerToFloat kernel that dynamic int8 uses too. On all-MiniLM-L6-v2, whose
    [CLS] token carries outlier activations, quantising the outputs as well drops the mean
    cosine to fp32 from 0.989 to 0.92. A range is the mean over the calibration runs of
    each run's min and max (``CalibMovingAverage``), which clips rare outliers (0.983
    mean cosine with the extremes of all runs instead).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    model = onnx.load(str(fp32))
    with warnings.catch_warnings():
        # Zero or infinite ranges of constants (the mask's fill value) that stay float.
        warnings.simplefilter("ignore", RuntimeWarning)
        quantize_static(
            model,
            str(int8),
            _Feeds(feeds),
            quant_format=QuantFormat.QDQ,
            nodes_to_quantize=weighted_matmuls_apart(model),
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"], "CalibMovingAverage": True},
        )


def weighted_matmuls_apart(model: Any) -> list[str]:
    """Feed the MatMuls with constant weights their inputs through copies (Identity nodes),
    in place; returns those MatMuls' names.

    In QDQ form every consumer of a quantised tensor reads it through the same
    DequantizeLinear, so the residual Adds sharing a LayerNorm output with the next
    MatMuls would add the int8-rounded value; with a copy they add the float one (mean
    cosine to fp32 0.985 without the copies). onnxruntime drops the Identity nodes at load.
    """
    from onnx import helper

    weights = {w.name for w in model.graph.initializer}
    nodes = list(model.graph.node)
    weighted = [n for n in nodes if n.op_type == "MatMul" and n.input[1] in weights]
    copies: dict[str, str] = {}
    for node in weighted:
        source = node.input[0]
        if source not in copies:
            copies[source] = f"{source}_to_matmul"
            copy = helper.make_node("Identity", [source], [copies[source]], name=f"{source}_copy")
            nodes.insert(nodes.index(node), copy)
        node.input[0] = copies[source]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return [n.name for n in weighted]


def calibration_feeds(tokenizer: Any, names: Sequence[str], texts: Sequence[str]) -> Iterator[dict[str, np.ndarray]]:
    """One unpadded feed per text, tokenised as at inference ([PAD] would skew the ranges)."""
    for encoding in tokenizer.encode_batch(list(texts)):
        yield padded_inputs([encoding.ids], names)[0]


class _Feeds:
    """An onnxruntime CalibrationDataReader (which accepts any object with ``get_next``)."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def torch_reference(spec: str | None, texts: Sequence[str]) -> np.ndarray:
    """Embeddings computed with transformers/torch directly (for parity checks)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = resolve_source(spec)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model = AutoModel.from_pretrained(source).eval()
    batch = tokenizer(
        list(texts),
        padding=True,
        truncation=True,
        return_tensors="pt",
        max_length=max_length(source, tokenizer, model.config),
    )
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.numpy()
    return normalize(pool(hidden, batch["attention_mask"].numpy(), pooling_mode(source)))
