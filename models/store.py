"""Where built artifacts live, and the error that names the fix when one is missing.

Layout: ``<cache_dir>/<model>/<version>/`` plus ``<cache_dir>/manifest.json``. Every
model module finds its artifacts here, and ``models.artifacts`` checks them all, so
this module imports nothing of the models'.
"""

from __future__ import annotations

import json
from pathlib import Path

from models.config import ModelConfig

MANIFEST = "manifest.json"
FIX = "run `banter models build`"


class ArtifactsError(RuntimeError):
    """Artifacts are missing or stale; the message names the fix."""


def artifact_dir(config: ModelConfig, name: str, version: str) -> Path:
    """Where the artifact ``name`` at ``version`` lives."""
    return Path(config.cache_dir).expanduser() / name / version


def read_manifest(config: ModelConfig) -> dict[str, str]:
    """The manifest written by the last build (empty if none)."""
    path = Path(config.cache_dir).expanduser() / MANIFEST
    if not path.is_file():
        return {}
    data: dict[str, str] = json.loads(path.read_text())
    return data
