"""Building the artifacts a worker loads: ``build_all`` exports the encoder, trains the intent
head, embeds the response bank and converts the generator, each only when its current
version (``models.artifacts``) is not built yet, and writes the manifest.

``check`` is ``models.artifacts.check``, here too, since a build starts from what it reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from models import dataset, encoder, intent
from models.artifacts import calibration_texts, expected_versions, is_built, require
from models.artifacts import check as check
from models.build import encoder_export, generator_conversion, intent_training, response_bank
from models.build.atomic import build_into
from models.config import ModelConfig
from models.store import MANIFEST, read_manifest

Progress = Callable[[str], None]


def build_encoder(config: ModelConfig, version: str, progress: Progress) -> None:
    """Export the configured encoder to ONNX fp32 and static int8."""
    calibration = calibration_texts()
    build_into(config, "encoder", version, lambda d: encoder_export.export(config.encoder, d, progress, calibration))


def load_encoder(config: ModelConfig) -> encoder.OnnxEncoder:
    """A fresh onnxruntime encoder over the built export."""
    export_dir, _ = require(config, "encoder")
    return encoder.OnnxEncoder(export_dir, config.precision, config.ort_threads)


def build_intent(config: ModelConfig, version: str, enc: intent.Encoder, progress: Progress) -> dict[str, float]:
    """Train the intent head on the project's data; returns held-out metrics."""
    split = dataset.project_split()
    progress(f"intent: embedding {len(split.train) + len(split.oos_train)} training utterances")
    x, labels = intent_training.examples_xy(enc, split.train + split.oos_train)
    progress("intent: training head (5-fold calibration and threshold)")
    head, stats = intent_training.train(x, labels)
    x_test, test_labels = intent_training.examples_xy(enc, split.test + split.oos_test)
    metrics = intent_training.evaluate(head, x_test, test_labels)
    meta = {"cv": stats, "held_out": metrics, "precision": config.precision}
    build_into(config, "intent", version, lambda d: intent_training.save(head, d, meta))
    return metrics


def build_responder(config: ModelConfig, version: str, enc: intent.Encoder, progress: Progress) -> None:
    """Embed the persona response bank."""
    entries = response_bank.bank()
    progress(f"responder: embedding {len(entries)} replies")
    keys = response_bank.build_keys(enc, dataset.project_split(), entries)
    build_into(config, "responder", version, lambda d: response_bank.save(d, keys, entries))


def build_all(config: ModelConfig, progress: Progress, with_generator: bool = True) -> dict[str, str]:
    """Build whatever is missing or stale; returns the manifest {model: version}.
    ``with_generator`` False leaves the generator as it is (the tests build it apart)."""
    started = time.monotonic()
    wanted = expected_versions(config)
    if not is_built(config, "encoder", wanted["encoder"]):
        build_encoder(config, wanted["encoder"], progress)
    enc = load_encoder(config)
    if not is_built(config, "intent", wanted["intent"]):
        metrics = build_intent(config, wanted["intent"], enc, progress)
        progress("intent: held-out " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    if not is_built(config, "responder", wanted["responder"]):
        build_responder(config, wanted["responder"], enc, progress)
    manifest = {**read_manifest(config), **wanted}
    if with_generator:
        manifest["generator"] = generator_conversion.build(config, progress)
    else:
        progress("generator: not asked for, skipped")
    write_manifest(config, manifest)
    progress(f"models: built in {time.monotonic() - started:.1f} s: {manifest}")
    return manifest


def write_manifest(config: ModelConfig, manifest: dict[str, str]) -> None:
    """Write the manifest at the cache root."""
    root = Path(config.cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
