"""Built artifacts as a worker sees them: their content-hash versions, where the current
ones are, and the readiness check. Building them is ``models.build.artifacts``.

A version is a short hash of everything that determines the artifact's content (source
model files, data files, training recipe, precision), so it is known before building
and a changed input makes the old artifact stale. Layout: ``models.store``.
"""

from __future__ import annotations

import random
from pathlib import Path

from models import dataset, encoder, generator, intent, responder
from models.config import ModelConfig
from models.hashing import digest_files, digest_value
from models.store import FIX, ArtifactsError, artifact_dir, read_manifest

COMPLETE_MARKER = {"encoder": encoder.META_FILE, "intent": intent.META_FILE, "responder": responder.META_FILE}


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
    return digest_value([encoder_ver, config.precision, dataset.intent_data_version(), intent.RECIPE])


def responder_version(config: ModelConfig, encoder_ver: str) -> str:
    """Version of the embedded response bank for this encoder export and precision."""
    data = digest_files([dataset.RESPONSES_FILE, dataset.INTENTS_FILE, dataset.OOS_FILE])
    return digest_value([encoder_ver, config.precision, data, responder.RECIPE])


def expected_versions(config: ModelConfig) -> dict[str, str]:
    """The version each of the encoder, intent and responder artifacts must have."""
    enc = encoder_version(config)
    return {"encoder": enc, "intent": intent_version(config, enc), "responder": responder_version(config, enc)}


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


def check(config: ModelConfig) -> list[str]:
    """Problems that stop the models from loading (empty = ready)."""
    try:
        wanted = expected_versions(config)
    except (OSError, ValueError) as exc:
        return [f"encoder source {config.encoder or 'packaged'} unusable ({exc}): {FIX}"]
    problems = [
        missing_message(config, name, version)
        for name, version in wanted.items()
        if not is_built(config, name, version)
    ]
    return problems + generator.check(config)
