"""Understanding a message: one encoder call per micro-batch serves the intent head and
the retrieval responder.

The intent head reads the embedding of the user's message alone; the responder's query
mixes it with the recent context (the bot's last reply, the user's previous message).
All the texts a batch needs (its messages and whatever context the responder has not
seen) go through the encoder together, and the responder then knows the detected
intent (its replies written for that intent get their bonus).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from models.hashing import digest_value
from models.intent import IntentModel
from models.responder import Responder
from models.selector import Selector
from models.types import Candidate, Dialogue, IntentResult


@dataclass(frozen=True, slots=True)
class Understanding:
    """What the fast models say about one message."""

    intent: IntentResult
    reply: Candidate


class Understander:
    """Model[Dialogue, Understanding]: encode once, then the intent head and the responder;
    the selector (when given) rates the retrieved reply."""

    name = "understand"

    def __init__(self, intent: IntentModel, responder: Responder, scorer: Selector | None = None) -> None:
        if intent.encoder is not responder.encoder:
            raise ValueError("the intent head and the responder must share one encoder")
        self.intent = intent
        self.responder = responder
        self.scorer = scorer
        selected = [responder.version, scorer.version] if scorer else responder.version
        self.versions = {"intent": intent.version, "responder": digest_value(selected) if scorer else responder.version}
        self.version = digest_value([intent.version, self.versions["responder"]])

    def predict(self, batch: Sequence[Dialogue]) -> list[Understanding]:
        """The intent of each dialogue's last user text, and the nearest persona reply to
        that text in its context."""
        if not batch:
            return []
        texts = [dialogue.text for dialogue in batch]
        needed = self.responder.context_needed(batch)
        unique = list(dict.fromkeys(texts + needed))
        x = self.intent.encoder.encode(unique)
        row = {text: i for i, text in enumerate(unique)}
        messages, context = x[[row[t] for t in texts]], {t: x[row[t]] for t in needed}
        intents = self.intent.from_embeddings(messages)
        told = [replace(d, intent=i.label) for d, i in zip(batch, intents, strict=True)]
        replies = self.responder.from_embeddings(told, messages, context)
        if self.scorer is not None:
            replies = self.scorer.assess(batch, replies, generated=False, message_vectors=messages)
        return [Understanding(i, r) for i, r in zip(intents, replies, strict=True)]
