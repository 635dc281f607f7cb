"""The retrieval responder: the persona response bank, embedded once at build
(``models.build.response_bank``), and a nearest-reply search by cosine similarity over
the message and its recent context.

The bank is tagged by intent and by situation inside the intent ({intent: {situation:
[replies]}}). Each reply's key mixes the reply's own embedding, the centroid of the
training utterances of its intent ("general" replies use the out-of-scope centroid)
and the centroid of its situation's replies, so a user message lands near replies
written for its situation, and the reply text breaks ties inside it.

The query mixes the user's message with the bot's last reply and the user's previous
message, weighted lower, so that "yes!" after a question about pizza finds a reply
about food. A bot reply from the bank enters the query as its key (no encoding), and
recently embedded texts are remembered, so a message usually costs one embedding.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.dataset import OOS_LABEL
from models.encoder import normalize
from models.intent import Encoder
from models.types import Dialogue, Proposal

KEYS_FILE = "keys.npy"
META_FILE = "responder.json"
RECIPE = "reply0.4-intent0.3-situation0.3-v2"
"""Bump when keys are computed differently, so that old banks become stale."""
GENERAL = "general"
INTENT_BONUS = 0.1
TIE_MARGIN = 0.03
"""Replies scoring within this of the best are interchangeable; the seed picks one."""
MAX_TIES = 3
RECENT_SIZE = 4096
"""How many recently embedded texts are remembered: a user's previous message is context
for the next one, and a conversation stays on one worker."""


@dataclass(frozen=True, slots=True)
class ContextWeights:
    """Weights of the context in a query, next to the user's message (weight 1).

    Measured on models/data/retrieval_cases.json (``python -m models.build.retrieval_eval``,
    60 cases x 5 seeds, share of replies tagged with a fitting intent or situation):
    message alone 58%; bot 0.5 and user 0.25, 87% with all 8 topic switches answered
    on the new topic; more context (bot 0.75 and user 0.25, or bot 1.0) gains 3 points
    but lets the context win over a message that changes the subject."""

    bot: float = 0.5
    user: float = 0.25


def context_of(dialogue: Dialogue) -> tuple[str | None, str | None]:
    """The bot's last reply and the user's previous message, before the current text."""
    earlier = dialogue.history[:-1]
    bot = next((u.text for u in reversed(earlier) if u.speaker == "bot"), None)
    user = next((u.text for u in reversed(earlier) if u.speaker == "user"), None)
    return bot, user


class Responder:
    """Model[Dialogue, Proposal]: the nearest persona reply and its cosine similarity."""

    name = "responder"

    def __init__(
        self, encoder: Encoder, out_dir: Path, version: str, weights: ContextWeights = ContextWeights()
    ) -> None:
        meta = json.loads((out_dir / META_FILE).read_text())
        self.encoder = encoder
        self.version = version
        self.out_dir = out_dir
        self.weights = weights
        self.keys = np.load(out_dir / KEYS_FILE)
        self.texts: list[str] = meta["texts"]
        self.intents = np.array(meta["intents"])
        self.situations = np.array(meta["situations"])
        self._index = {text: i for i, text in enumerate(self.texts)}
        self._recent: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def predict(self, batch: Sequence[Dialogue]) -> list[Proposal]:
        """One reply per dialogue, chosen among near-ties by the dialogue's seed."""
        if not batch:
            return []
        texts = [d.text for d in batch]
        needed = self.context_needed(batch)
        x = self.encoder.encode(texts + needed)
        return self.from_embeddings(batch, x[: len(texts)], dict(zip(needed, x[len(texts) :], strict=True)))

    def tags(self, text: str) -> tuple[str, str]:
        """The intent and situation of a bank reply."""
        i = self._index[text]
        return str(self.intents[i]), str(self.situations[i])

    def context_needed(self, batch: Sequence[Dialogue]) -> list[str]:
        """The context texts of ``batch`` that must be embedded: not bank replies, not
        remembered, not one of the batch's own messages; each once."""
        own = {d.text for d in batch}
        with self._lock:
            known = own | self._recent.keys() | self._index.keys()
        wanted = (t for d in batch if self.weights.user or self.weights.bot for t in context_of(d))
        return list(dict.fromkeys(t for t in wanted if t is not None and t not in known))

    def from_embeddings(
        self, batch: Sequence[Dialogue], messages: np.ndarray, context: Mapping[str, np.ndarray] | None = None
    ) -> list[Proposal]:
        """The same replies for dialogues whose user text is already embedded (one row each);
        ``context`` holds the embeddings of ``context_needed(batch)`` (embedded here if None)."""
        return [found[0] for found in self.shortlist(batch, messages, context, 1)]

    def shortlist(
        self,
        batch: Sequence[Dialogue],
        messages: np.ndarray,
        context: Mapping[str, np.ndarray] | None = None,
        k: int = 3,
    ) -> list[list[Proposal]]:
        """The ``k`` best replies per dialogue, best first (the first as ``from_embeddings`` picks it)."""
        if context is None:
            needed = self.context_needed(batch)
            context = dict(zip(needed, self.encoder.encode(needed), strict=True)) if needed else {}
        self._remember({**context, **{d.text: m for d, m in zip(batch, messages, strict=True)}})
        similarity = self.queries(batch, messages, context) @ self.keys.T
        return [self._top(d, row, k) for d, row in zip(batch, similarity, strict=True)]

    def queries(self, batch: Sequence[Dialogue], messages: np.ndarray, context: Mapping[str, np.ndarray]) -> np.ndarray:
        """Unit query per dialogue: its message plus its weighted context."""
        rows = [m + self._context_vector(d, context) for d, m in zip(batch, messages, strict=True)]
        return normalize(np.stack(rows)) if rows else messages

    def _context_vector(self, dialogue: Dialogue, context: Mapping[str, np.ndarray]) -> np.ndarray:
        bot, user = context_of(dialogue)
        total = np.zeros(self.keys.shape[1], dtype=np.float32)
        for text, weight in ((bot, self.weights.bot), (user, self.weights.user)):
            vector = self._embedding(text, context) if text is not None and weight else None
            if vector is not None:
                total += weight * vector
        return total

    def _embedding(self, text: str, context: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """A bank reply stands for its key (its text, intent and situation); other texts
        for their embedding."""
        if text in self._index:
            return np.asarray(self.keys[self._index[text]])
        with self._lock:
            return context.get(text, self._recent.get(text))

    def _remember(self, embedded: Mapping[str, np.ndarray]) -> None:
        with self._lock:
            self._recent.update(embedded)
            while len(self._recent) > RECENT_SIZE:
                del self._recent[next(iter(self._recent))]

    def _top(self, dialogue: Dialogue, similarity: np.ndarray, k: int) -> list[Proposal]:
        """The best reply (chosen among near-ties by the seed), then the next best ones."""
        ranked = similarity + self._bonus(dialogue.intent) - self._used(dialogue)
        order = np.argsort(-ranked, kind="stable")
        ties = [i for i in order[:MAX_TIES] if ranked[i] >= ranked[order[0]] - TIE_MARGIN]
        pick = ties[random.Random(dialogue.seed).randrange(len(ties))]
        rest = [int(i) for i in order[: k + 1] if i != pick][: k - 1]
        return [Proposal(self.texts[i], float(similarity[i])) for i in (pick, *rest)]

    def _bonus(self, intent: str | None) -> np.ndarray:
        wanted = GENERAL if intent == OOS_LABEL else intent
        return np.where(self.intents == wanted, INTENT_BONUS, 0.0)

    def _used(self, dialogue: Dialogue) -> np.ndarray:
        """A penalty for replies the bot already gave in this conversation."""
        penalty = np.zeros(len(self.texts))
        said = [self._index[u.text] for u in dialogue.history if u.speaker == "bot" and u.text in self._index]
        penalty[said] = 1.0
        return penalty
