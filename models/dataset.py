"""The project's labelled data (intents, out-of-scope, persona texts) and its fixed split
(in the CLINC150 layout: ``models.build.clinc`` reads and writes that format's files)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.hashing import digest_files

DATA_DIR = Path(__file__).parent / "data"
INTENTS_FILE = DATA_DIR / "intents.json"
OOS_FILE = DATA_DIR / "oos.json"
RESPONSES_FILE = DATA_DIR / "responses.json"
CANNED_FILE = DATA_DIR / "canned.json"
OOS_LABEL = "oos"
HELD_OUT_BUCKETS = 5
"""One in five utterances is held out, chosen by a hash of its text (stable under edits)."""

Example = tuple[str, str]


@dataclass(frozen=True)
class Split:
    """Labelled examples in the CLINC150 layout; ``val`` parts may be empty."""

    train: list[Example]
    test: list[Example]
    oos_train: list[Example]
    oos_test: list[Example]
    val: list[Example] = field(default_factory=list)
    oos_val: list[Example] = field(default_factory=list)


def read_json(path: Path) -> Any:
    """The parsed contents of a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


def intent_examples() -> dict[str, list[str]]:
    """The project's utterances by intent."""
    data: dict[str, list[str]] = read_json(INTENTS_FILE)
    return data


def oos_examples() -> list[str]:
    """The project's out-of-scope utterances."""
    data: list[str] = read_json(OOS_FILE)
    return data


def is_held_out(text: str) -> bool:
    """Whether ``text`` belongs to the fixed held-out split."""
    digest = hashlib.sha1(text.strip().lower().encode()).digest()
    return int.from_bytes(digest[:4], "big") % HELD_OUT_BUCKETS == 0


def project_split() -> Split:
    """The project's data split into train and held-out test by text hash."""
    examples = [(t, label) for label, texts in intent_examples().items() for t in texts]
    oos = [(t, OOS_LABEL) for t in oos_examples()]
    return Split(
        train=[e for e in examples if not is_held_out(e[0])],
        test=[e for e in examples if is_held_out(e[0])],
        oos_train=[e for e in oos if not is_held_out(e[0])],
        oos_test=[e for e in oos if is_held_out(e[0])],
    )


def intent_data_version() -> str:
    """Content hash of the intent and out-of-scope data files."""
    return digest_files([INTENTS_FILE, OOS_FILE])
