"""The one configuration object every model loader and builder takes.

Nothing in ``models/`` reads the environment: the caller (``streams/``) builds a
``ModelConfig`` from its settings and passes it in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Precision = Literal["fp32", "int8"]


@dataclass(frozen=True)
class ModelConfig:
    """Where artifacts live and which checkpoints and knobs the models use."""

    cache_dir: Path
    """Artifacts root, e.g. ``~/.cache/banter/models``."""
    encoder: str | None = None
    """Hugging Face id or local path of the sentence encoder; None = packaged all-MiniLM-L6-v2."""
    precision: Precision = "fp32"
    """ONNX encoder precision at inference: fp32, or int8 quantised statically at build (both batch-independent)."""
    ort_threads: int = 1
    """onnxruntime intra-op thread count for the encoder session."""
    blas_threads: int = 1
    """Threads of numpy's BLAS (OpenBLAS) for the selector's and responder's matrix products. Its
    default, one per core, keeps a helper thread spinning after every product: on 2 cores that
    measured half a core taken from the event loop at 50 msg/s."""
    generator: str | None = None
    """Hugging Face causal-LM id or local path; None = the packaged SmolLM2-135M-Instruct."""
    generator_max_new_tokens: int = 32
    """Cap on tokens the generator samples per reply."""
    generator_max_time_s: float = 0.6
    """Cap on wall time the generator spends per batch."""
    generator_adapter: str | None = None
    """A LoRA adapter (peft folder) merged into the generator at build: None = banter's own
    fine-tune (``models/data/generator_adapter``) for the default model and none for any other;
    "none" = no adapter; else the adapter's folder."""
    oos_threshold: float | None = None
    """Out-of-scope confidence threshold; None = the one chosen at build time."""
    generator_threads: int = 1
    """torch intra-op threads for generator inference (1 is robust on a shared 2-core box:
    2 threads are many times slower per token when another process holds a core)."""
    generator_history_turns: int = 6
    """How many of the latest turns the generator's prompt is built from."""
    generator_train_threads: int = 2
    """torch threads for fine-tuning the generator (``banter models finetune-generator``)."""
