"""Understanding a message: one embedding of the user's text serves the intent head and
the retrieval responder.

Both models read the same sentence embedding; computing it once per message halves
the encoder's work, and the responder then knows the detected intent (its replies
written for that situation get their bonus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from models.hashing import digest_value
from models.intent import IntentModel
from models.responder import Responder
from models.types import Candidate, Dialogue, IntentResult


@dataclass(frozen=True, slots=True)
class Understanding:
    """What the fast models say about one message."""

    intent: IntentResult
    reply: Candidate


class Understander:
    """Model[Dialogue, Understanding]: encode once, then the intent head and the responder."""

    name = "understand"

    def __init__(self, intent: IntentModel, responder: Responder) -> None:
        if intent.encoder is not responder.encoder:
            raise ValueError("the intent head and the responder must share one encoder")
        self.intent = intent
        self.responder = responder
        self.versions = {"intent": intent.version, "responder": responder.version}
        self.version = digest_value([intent.version, responder.version])

    def predict(self, batch: Sequence[Dialogue]) -> list[Understanding]:
        """The intent and the nearest persona reply of each dialogue's last user text."""
        if not batch:
            return []
        x = self.intent.encoder.encode([dialogue.text for dialogue in batch])
        intents = self.intent.from_embeddings(x)
        told = [replace(d, intent=i.label) for d, i in zip(batch, intents, strict=True)]
        replies = self.responder.from_embeddings(told, x)
        return [Understanding(i, r) for i, r in zip(intents, replies, strict=True)]
