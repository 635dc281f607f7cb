"""Backchannel replies: short, warm answers that fit a kind of message without claiming
anything about its content ("Oh no, that sounds rough. Want to tell me what happened?").

A specific reply that misreads the message ("Passed your driving test?" to someone who
failed) is worse than a generic one that fits; the selector weighs one against the
other. The kind of message (a question, bad news, good news, thanks, a laugh, a short
answer, a plain statement) is the nearest centroid of a few written examples per kind,
in the same sentence-embedding space as the message; a message ending with "?" is a
question. Data: ``models/data/backchannel.json``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from models.dataset import DATA_DIR, read_json
from models.encoder import normalize
from models.hashing import digest_files
from models.intent import Encoder
from models.types import Dialogue, Proposal

DATA_FILE = DATA_DIR / "backchannel.json"
QUESTION = "question"


class Backchannel:
    """One backchannel reply per dialogue, for the kind of its last message."""

    name = "backchannel"

    def __init__(self, encoder: Encoder) -> None:
        acts: dict[str, dict[str, list[str]]] = read_json(DATA_FILE)["acts"]
        self.version = digest_files([DATA_FILE])
        self.acts = list(acts)
        self.replies = {act: tuple(spec["replies"]) for act, spec in acts.items()}
        self.texts = {text for replies in self.replies.values() for text in replies}
        vectors = [encoder.encode(spec["examples"]).mean(axis=0) for spec in acts.values()]
        self.centroids = normalize(np.stack(vectors))

    def act(self, text: str, vector: np.ndarray) -> str:
        """The kind of message ``text`` is (``vector``: its unit embedding)."""
        if text.rstrip().endswith("?") and QUESTION in self.replies:
            return QUESTION
        return self.acts[int(np.argmax(self.centroids @ vector))]

    def reply(self, dialogue: Dialogue, vector: np.ndarray) -> Proposal:
        """A reply for the message's kind that the bot has not said lately, chosen by the dialogue's seed."""
        said = {u.text for u in dialogue.history if u.speaker == "bot"}
        options = [text for text in self.replies[self.act(dialogue.text, vector)] if text not in said]
        options = options or list(self.replies[self.act(dialogue.text, vector)])
        return Proposal(options[random.Random(dialogue.seed).randrange(len(options))], 0.0)

    def predict(self, batch: Sequence[Dialogue], vectors: np.ndarray) -> list[Proposal]:
        return [self.reply(d, v) for d, v in zip(batch, vectors, strict=True)]
