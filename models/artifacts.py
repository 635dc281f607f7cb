"""Built artifacts: where they live, their content-hash versions, the readiness check
and ``build_all`` (export the encoder, train the intent head, embed the response bank,
build the generator).

Layout: ``<cache_dir>/<model>/<version>/`` plus ``<cache_dir>/manifest.json``. A
version is a short hash of everything that determines the artifact's content (source
model files, data files, training recipe, precision), so it is known before building
and a changed input makes the old artifact stale.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models import dataset, encoder, intent, responder
from models.config import ModelConfig
from models.hashing import digest_files, digest_value

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
MANIFEST = "manifest.json"
FIX = "run `banter models build`"
COMPLETE_MARKER = {"encoder": encoder.META_FILE, "intent": intent.META_FILE,
                   "responder": responder.META_FILE}


class ArtifactsError(RuntimeError):
    """Artifacts are missing or stale; the message names the fix."""


def encoder_version(config: ModelConfig) -> str:
    """Version of the ONNX export of the configured encoder (and of its int8 calibration)."""
    return digest_value([encoder.source_version(config.encoder), calibration_texts()])


def calibration_texts() -> list[str]:
    """A fixed sample of the training utterances (never held-out ones) for int8 calibration."""
    split = dataset.project_split()
    texts = sorted(t for t, _ in split.train + split.oos_train)
    return random.Random(0).sample(texts, min(encoder.CALIBRATION_SIZE, len(texts)))


def intent_version(config: ModelConfig, encoder_ver: str) -> str:
    """Version of the intent head for this encoder export and precision."""
    return digest_value([encoder_ver, config.precision, dataset.intent_data_version(),
                         intent.RECIPE])


def responder_version(config: ModelConfig, encoder_ver: str) -> str:
    """Version of the embedded response bank for this encoder export and precision."""
    data = digest_files([dataset.RESPONSES_FILE, dataset.INTENTS_FILE, dataset.OOS_FILE])
    return digest_value([encoder_ver, config.precision, data, responder.RECIPE])


def expected_versions(config: ModelConfig) -> dict[str, str]:
    """The version each of the encoder, intent and responder artifacts must have."""
    enc = encoder_version(config)
    return {"encoder": enc, "intent": intent_version(config, enc),
            "responder": responder_version(config, enc)}


def artifact_dir(config: ModelConfig, name: str, version: str) -> Path:
    """Where the artifact ``name`` at ``version`` lives."""
    return Path(config.cache_dir).expanduser() / name / version


def is_built(config: ModelConfig, name: str, version: str) -> bool:
    """Whether the artifact exists and was completely written."""
    return (artifact_dir(config, name, version) / COMPLETE_MARKER[name]).is_file()


def require(config: ModelConfig, name: str) -> tuple[Path, str]:
    """The directory and version of a built artifact, or ArtifactsError naming the fix."""
    version = expected_versions(config)[name]
    if not is_built(config, name, version):
        raise ArtifactsError(missing_message(config, name, version))
    return artifact_dir(config, name, version), version


def missing_message(config: ModelConfig, name: str, version: str) -> str:
    """Why an artifact is not usable, and what to do."""
    built = read_manifest(config).get(name)
    state = f"stale (built {built}, settings need {version})" if built else "missing"
    return f"{name} artifacts {state} under {config.cache_dir}: {FIX}"


def read_manifest(config: ModelConfig) -> dict[str, str]:
    """The manifest written by the last build (empty if none)."""
    path = Path(config.cache_dir).expanduser() / MANIFEST
    if not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data


def check(config: ModelConfig) -> list[str]:
    """Problems that stop the models from loading (empty = ready)."""
    try:
        wanted = expected_versions(config)
    except (OSError, ValueError) as exc:
        return [f"encoder source {config.encoder or 'packaged'} unusable ({exc}): {FIX}"]
    problems = [missing_message(config, name, version) for name, version in wanted.items()
                if not is_built(config, name, version)]
    return problems + generator_problems(config)


def generator_problems(config: ModelConfig) -> list[str]:
    """The generator module's own check, when it provides one."""
    module = generator_module()
    check_fn = getattr(module, "check", None) if module else None
    return list(check_fn(config)) if check_fn else []


def generator_module() -> Any:
    """``models.generator`` if it exists, else None (imported lazily: it loads torch)."""
    try:
        import models.generator as module
    except ModuleNotFoundError as exc:
        if exc.name != "models.generator":
            raise
        return None
    return module


def build_into(config: ModelConfig, name: str, version: str,
               write: Callable[[Path], None]) -> None:
    """Run ``write`` into a scratch folder, then move it into place atomically."""
    final = artifact_dir(config, name, version)
    scratch = final.with_name(f"{version}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        write(scratch)
        shutil.rmtree(final, ignore_errors=True)
        scratch.rename(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def build_encoder(config: ModelConfig, version: str, progress: Progress) -> None:
    """Export the configured encoder to ONNX fp32 and static int8."""
    calibration = calibration_texts()
    build_into(config, "encoder", version,
               lambda d: encoder.export(config.encoder, d, progress, calibration))


def load_encoder(config: ModelConfig) -> encoder.OnnxEncoder:
    """A fresh onnxruntime encoder over the built export."""
    export_dir, _ = require(config, "encoder")
    return encoder.OnnxEncoder(export_dir, config.precision, config.ort_threads)


def build_intent(config: ModelConfig, version: str, enc: intent.Encoder,
                 progress: Progress) -> dict[str, float]:
    """Train the intent head on the project's data; returns held-out metrics."""
    split = dataset.project_split()
    progress(f"intent: embedding {len(split.train) + len(split.oos_train)} training utterances")
    x, labels = intent.examples_xy(enc, split.train + split.oos_train)
    progress("intent: training head (5-fold calibration and threshold)")
    head, stats = intent.train(x, labels)
    x_test, test_labels = intent.examples_xy(enc, split.test + split.oos_test)
    metrics = intent.evaluate(head, x_test, test_labels)
    meta = {"cv": stats, "held_out": metrics, "precision": config.precision}
    build_into(config, "intent", version, lambda d: intent.save(head, d, meta))
    return metrics


def build_responder(config: ModelConfig, version: str, enc: intent.Encoder,
                    progress: Progress) -> None:
    """Embed the persona response bank."""
    entries = responder.bank()
    progress(f"responder: embedding {len(entries)} replies")
    keys = responder.build_keys(enc, dataset.project_split(), entries)
    build_into(config, "responder", version, lambda d: responder.save(d, keys, entries))


def build_all(config: ModelConfig, progress: Progress) -> dict[str, str]:
    """Build whatever is missing or stale; returns the manifest {model: version}."""
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
    manifest.update(build_generator(config, progress))
    write_manifest(config, manifest)
    progress(f"models: built in {time.monotonic() - started:.1f} s: {manifest}")
    return manifest


def build_generator(config: ModelConfig, progress: Progress) -> dict[str, str]:
    """Call the generator's own build, when its module exists."""
    module = generator_module()
    build_fn = getattr(module, "build", None) if module else None
    if build_fn is None:
        progress("generator: models.generator.build not available yet, skipped")
        return {}
    return {"generator": str(build_fn(config, progress))}


def write_manifest(config: ModelConfig, manifest: dict[str, str]) -> None:
    """Write the manifest at the cache root."""
    root = Path(config.cache_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    (root / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
