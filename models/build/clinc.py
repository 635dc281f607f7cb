"""The CLINC150 JSON format (keys train, val, test, oos_train, oos_val, oos_test), which the
intent evaluation (``models.build.intent_eval``) reads."""

from __future__ import annotations

import json
from pathlib import Path

from models.dataset import Example, Split, read_json


def load_clinc(path: Path) -> Split:
    """A CLINC150-format JSON file (keys train, val, test, oos_train, oos_val, oos_test)."""
    data = read_json(path)

    def part(key: str) -> list[Example]:
        return [(str(text), str(label)) for text, label in data.get(key, [])]

    return Split(
        train=part("train"),
        test=part("test"),
        oos_train=part("oos_train"),
        oos_test=part("oos_test"),
        val=part("val"),
        oos_val=part("oos_val"),
    )


def write_clinc(split: Split, path: Path) -> None:
    """Write ``split`` as CLINC150-format JSON."""
    keys = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
    data = {key: [list(e) for e in getattr(split, key)] for key in keys}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
