"""Short content hashes: the versions of artifacts and of the inputs they are built from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_SHORT = 12


def digest_file(path: Path, h: Any) -> None:
    """Feed one file's name and bytes into the running hash ``h``."""
    h.update(path.name.encode())
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


def digest_files(paths: Iterable[Path]) -> str:
    """Short sha256 over the given files (sorted by name, names included)."""
    h = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.as_posix()):
        digest_file(path, h)
    return h.hexdigest()[:_SHORT]


def digest_value(value: Any) -> str:
    """Short sha256 of a JSON-serialisable value (keys sorted)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:_SHORT]
