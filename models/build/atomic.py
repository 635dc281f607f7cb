"""Writing an artifact all at once: into a scratch folder, then moved into place, so that a
worker never finds half of one (``models.store`` says where it goes)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from models.config import ModelConfig
from models.store import artifact_dir


def build_into(config: ModelConfig, name: str, version: str, write: Callable[[Path], None]) -> None:
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
