"""The model registry: ``load(name, config)`` returns one ready model from built artifacts.

The encoder session is shared between the intent head and the responder when both
load with the same export, precision and thread count.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from models import artifacts, backchannel, generator, intent, responder, selector, understand
from models.config import ModelConfig
from models.encoder import OnnxEncoder
from models.hashing import digest_value

MODEL_NAMES = ("intent", "responder", "generator")
"""The models whose outputs the router joins (the names on ``banter.outputs``)."""
SERVED = ("understand", "generator")
"""What a worker loads: the understand step (intent and responder on one embedding), the generator."""


_ENCODER_LOCK = threading.Lock()


def shared_encoder(export_dir: Path, precision: str, threads: int) -> OnnxEncoder:
    """One onnxruntime encoder per (export, precision, threads), also when models load on several
    threads at once (the understand step and the generator's selector share it)."""
    with _ENCODER_LOCK:
        return _encoder(export_dir, precision, threads)


@lru_cache(maxsize=4)
def _encoder(export_dir: Path, precision: str, threads: int) -> OnnxEncoder:
    return OnnxEncoder(export_dir, precision, threads)


def encoder_for(config: ModelConfig) -> OnnxEncoder:
    """The encoder for ``config``; ArtifactsError when its export is not built."""
    export_dir, _ = artifacts.require(config, "encoder")
    return shared_encoder(export_dir, config.precision, config.ort_threads)


def load_intent(config: ModelConfig) -> intent.IntentModel:
    """The intent model; its version also covers a threshold override."""
    head_dir, version = artifacts.require(config, "intent")
    if config.oos_threshold is not None:
        version = digest_value([version, config.oos_threshold])
    return intent.IntentModel(encoder_for(config), intent.load_head(head_dir), version, config.oos_threshold)


def load_responder(config: ModelConfig) -> responder.Responder:
    """The retrieval responder."""
    bank_dir, version = artifacts.require(config, "responder")
    return responder.Responder(encoder_for(config), bank_dir, version)


def load_understander(config: ModelConfig, scorer: selector.Selector | None = None) -> understand.Understander:
    """The intent head and the responder over one shared encoder session, and the selector."""
    encoder = encoder_for(config)
    return understand.Understander(
        load_intent(config),
        load_responder(config),
        scorer or selector.Selector(encoder),
        backchannel.Backchannel(encoder),
    )


def load_generator(config: ModelConfig, scorer: selector.Selector | None = None) -> generator.ChatGenerator:
    """The generator, its replies scored by the selector over the shared encoder."""
    return generator.load(config, scorer or selector.Selector(encoder_for(config)))


def load(name: str, config: ModelConfig) -> Any:
    """Load the model ``name`` (intent, responder, understand or generator) for ``config``."""
    loaders = {
        "intent": load_intent,
        "responder": load_responder,
        "understand": load_understander,
        "generator": load_generator,
    }
    if name not in loaders:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(loaders)}")
    limit_blas_threads(config.blas_threads)
    return loaders[name](config)


def limit_blas_threads(threads: int) -> None:
    """Cap numpy's BLAS pool for this whole process (threadpoolctl works after numpy is imported)."""
    threadpool_limits(limits=max(1, threads), user_api="blas")
