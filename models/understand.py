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

import numpy as np

from models import persona, policy
from models.backchannel import Backchannel
from models.hashing import digest_value
from models.intent import IntentModel
from models.responder import Responder
from models.selector import Selector
from models.types import Dialogue, IntentResult, Proposal

SHORTLIST = 3
"""Retrieval replies per message the selector weighs (with the backchannel reply)."""


@dataclass(frozen=True, slots=True)
class Understanding:
    """What the fast models say about one message."""

    intent: IntentResult
    reply: Proposal


class Understander:
    """Model[Dialogue, Understanding]: encode once, then the intent head and the responder.

    With a selector, the reply is the best-rated of the responder's shortlist and (when
    given) the backchannel reply for the kind of message.
    """

    name = "understand"

    def __init__(
        self,
        intent: IntentModel,
        responder: Responder,
        scorer: Selector | None = None,
        backchannel: Backchannel | None = None,
    ) -> None:
        if intent.encoder is not responder.encoder:
            raise ValueError("the intent head and the responder must share one encoder")
        self.intent = intent
        self.responder = responder
        self.scorer = scorer
        self.backchannel = backchannel
        parts = [responder.version, scorer.version if scorer else "", backchannel.version if backchannel else ""]
        reply_version = digest_value(parts) if scorer or backchannel else responder.version
        self.versions = {"intent": intent.version, "responder": reply_version}
        self.version = digest_value([intent.version, reply_version])
        if scorer is not None:  # every fixed line the bot says, embedded once before any message
            lines = [*persona.every_canned_reply(), *policy.FALLBACK_LINES]
            fixed = sorted({*responder.texts, *(backchannel.texts if backchannel else ()), *lines})
            key = digest_value([responder.version, scorer.encoder_key(), fixed])
            scorer.warm(fixed, cache=responder.out_dir / f"warm-{key[:16]}.npy")

    def predict(self, batch: Sequence[Dialogue]) -> list[Understanding]:
        """The intent of each dialogue's last user text, and the reply chosen for it in its context."""
        if not batch:
            return []
        intents, options, messages = self._options(batch)
        if self.scorer is None:
            return [Understanding(i, found[0][0]) for i, found in zip(intents, options, strict=True)]
        index = [i for i, found in enumerate(options) for _ in found]
        rated = self.scorer.assess(
            [batch[i] for i in index],
            [c for found in options for c, _ in found],
            [k for found in options for _, k in found],
            message_vectors=messages[index],
        )
        best: dict[int, Proposal] = {}
        for i, candidate in zip(index, rated, strict=True):
            if i not in best or (candidate.quality or 0.0) > (best[i].quality or 0.0):
                best[i] = candidate
        return [Understanding(intent, best[i]) for i, intent in enumerate(intents)]

    def options(self, batch: Sequence[Dialogue]) -> tuple[list[IntentResult], list[list[tuple[Proposal, str]]]]:
        """Each dialogue's intent and its reply candidates with their kinds (best retrieval first)."""
        intents, options, _ = self._options(batch)
        return intents, options

    def _options(
        self, batch: Sequence[Dialogue]
    ) -> tuple[list[IntentResult], list[list[tuple[Proposal, str]]], np.ndarray]:
        texts = [dialogue.text for dialogue in batch]
        needed = self.responder.context_needed(batch)
        unique = list(dict.fromkeys(texts + needed))
        x = self.intent.encoder.encode(unique)
        row = {text: i for i, text in enumerate(unique)}
        messages, context = x[[row[t] for t in texts]], {t: x[row[t]] for t in needed}
        intents = self.intent.from_embeddings(messages)
        told = [replace(d, intent=i.label) for d, i in zip(batch, intents, strict=True)]
        k = SHORTLIST if self.scorer is not None else 1
        options = [[(c, "retrieval") for c in found] for found in self.responder.shortlist(told, messages, context, k)]
        if self.backchannel is not None:
            for found, extra in zip(options, self.backchannel.predict(batch, messages), strict=True):
                found.append((extra, "backchannel"))
        return intents, options, messages
