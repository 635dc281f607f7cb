"""The response selector: how likely a candidate reply is to make sense where it would be said.

Every reply candidate (retrieval or generated) gets a few cheap signals: its relevance
to the user's message and to the recent conversation (cosine of sentence embeddings),
echo of the user's words, repetition of the bot's recent replies, length, whether it
asks back, assistant-style hedges and refusals, whether it was cut off, and, for the
generator, its own mean token log-probability. A logistic model turns them into
``quality``, the probability that the reply is sensible. An empty or unsafe reply, or a
copy of the user's message, gets 0.

The weights are fitted, not guessed (``models.build.selector_fitting``): on candidates
for the turns of the project's selector dialogues (``models/data/selector_dialogues.json``:
the written reply, a reply from another conversation, retrieval's and the generator's),
each rated sensible or not (``models/data/selector_labels.json``). They ship as
``models/data/selector.json``, with ``accept_now``: a retrieval reply that good is
sent without waiting for the generator, because on the fitting data the generator
almost never beat it.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import ChainMap
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from models.dataset import DATA_DIR
from models.hashing import digest_files
from models.types import Dialogue, Proposal

WEIGHTS_FILE = DATA_DIR / "selector.json"
FEATURES = (
    "rel_msg",
    "rel_ctx",
    "echo",
    "repeat",
    "length",
    "question",
    "hedge",
    "unfinished",
    "generated",
    "confidence",
    "backchannel",
)
KINDS = ("retrieval", "generator", "backchannel")
"""Where a candidate comes from: the persona bank, the chat model, or a backchannel reply."""
RECENT_BOT = 3
COPY_OVERLAP = 0.8
"""A reply sharing this much of its words with the user's message is a copy of it."""
LONG_WORDS = 40

_WORD = re.compile(r"[a-z0-9']+")
_HEDGE = re.compile(
    r"\b(as an ai|language model|as a chatbot|i'?m sorry,? but|i can'?t (help|assist)|i don'?t have the ability"
    r"|i'?m not able to|i'?m not sure what|can you please|i cannot)\b"
)
_END = re.compile(r"[.!?…)\"'”]\s*$|[\U0001F300-\U0001FAFF]\s*$")
UNSAFE = frozenset(
    {
        "kill yourself",
        "kys",
        "retard",
        "retarded",
        "faggot",
        "fag",
        "nigger",
        "nigga",
        "tranny",
        "whore",
        "slut",
        "cunt",
        "rape",
        "raped",
        "rapist",
        "nazi",
        "heil",
        "suicide",
        "self-harm",
        "porn",
        "pedophile",
        "terrorist",
        "bitch",
        "fuck",
        "fucking",
        "motherfucker",
        "dickhead",
        "asshole",
        "bastard",
        "shit",
        "die in",
    }
)
"""Words and phrases a banter reply never contains (a reply with one scores 0)."""


class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Weights:
    """A fitted logistic model over ``FEATURES``, and the don't-wait threshold."""

    coef: tuple[float, ...]
    intercept: float
    accept_now: float
    version: str = ""

    def quality(self, x: np.ndarray) -> np.ndarray:
        """P(sensible) for each row of features."""
        z = x @ np.asarray(self.coef) + self.intercept
        return 1.0 / (1.0 + np.exp(-z))


@lru_cache(maxsize=4)
def load_weights(path: Path = WEIGHTS_FILE) -> Weights:
    """The shipped weights; FileNotFoundError names the command that fits them."""
    if not path.is_file():
        raise FileNotFoundError(f"selector weights missing at {path}: run `banter models fit-selector`")
    data = json.loads(path.read_text())
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"selector weights at {path} are for other features: run `banter models fit-selector`")
    return Weights(tuple(data["coef"]), float(data["intercept"]), float(data["accept_now"]), digest_files([path]))


def unsafe(text: str) -> bool:
    """Whether ``text`` holds a word or phrase banter never says."""
    lowered = " ".join(_WORD.findall(text.lower()))
    words = set(lowered.split())
    return any((phrase in words) if " " not in phrase else (f" {phrase} " in f" {lowered} ") for phrase in UNSAFE)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def overlap(a: str, b: str) -> float:
    """Word-set Jaccard similarity (0 when either is empty)."""
    x, y = set(words(a)), set(words(b))
    return len(x & y) / len(x | y) if x and y else 0.0


def context_turns(dialogue: Dialogue) -> list[str]:
    """The conversation just before the user's message: its two previous turns (usually the user's
    previous message and the bot's last reply). The context's vector is their embeddings' mean."""
    return [u.text for u in dialogue.history[:-1][-2:]]


def recent_bot(dialogue: Dialogue) -> list[str]:
    return [u.text for u in dialogue.history[:-1] if u.speaker == "bot"][-RECENT_BOT:]


def features(
    text: str,
    dialogue: Dialogue,
    rel_msg: float,
    rel_ctx: float | None,
    *,
    kind: str,
    confidence: float = 0.0,
    truncated: bool = False,
) -> np.ndarray:
    """The signals of one candidate (see ``FEATURES``) of ``kind`` (see ``KINDS``); ``rel_ctx`` None
    when there is no earlier turn."""
    n = len(words(text))
    generated = kind == "generator"
    return np.array(
        [
            rel_msg,
            rel_msg if rel_ctx is None else rel_ctx,
            overlap(text, dialogue.text),
            max((overlap(text, bot) for bot in recent_bot(dialogue)), default=0.0),
            math.log1p(n) / math.log1p(LONG_WORDS),
            float("?" in text),
            float(bool(_HEDGE.search(text.lower()))),
            float(truncated or not _END.search(text)),
            float(generated),
            float(confidence) if generated else 0.0,
            float(kind == "backchannel"),
        ]
    )


def feature_rows(
    encoder: Encoder,
    dialogues: Sequence[Dialogue],
    candidates: Sequence[Proposal],
    kinds: Sequence[str],
    message_vectors: np.ndarray | None = None,
    known: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Features of each (dialogue, candidate) pair. Texts in ``known`` (text: unit embedding) are
    not embedded again; every other distinct text goes through one encoder call."""
    return _rows(encoder, dialogues, candidates, kinds, message_vectors, dict(known or {}))


def _rows(
    encoder: Encoder,
    dialogues: Sequence[Dialogue],
    candidates: Sequence[Proposal],
    kinds: Sequence[str],
    message_vectors: np.ndarray | None,
    vectors: MutableMapping[str, np.ndarray],
) -> np.ndarray:
    """``feature_rows``, adding the embeddings it computed to ``vectors``."""
    contexts = [context_turns(d) for d in dialogues]
    wanted = [c.text or " " for c in candidates] + [t for turns in contexts for t in turns]
    if message_vectors is None:
        wanted += [d.text for d in dialogues]
    missing = [t for t in dict.fromkeys(wanted) if t not in vectors]
    if missing:
        vectors.update(zip(missing, encoder.encode(missing), strict=True))
    rows = []
    for i, (dialogue, candidate) in enumerate(zip(dialogues, candidates, strict=True)):
        reply = vectors[candidate.text or " "]
        message = message_vectors[i] if message_vectors is not None else vectors[dialogue.text]
        context = sum((vectors[t] for t in contexts[i]), np.zeros_like(reply))
        norm = float(np.linalg.norm(context))
        rel_ctx = float(reply @ context) / norm if norm > 0 else None
        rows.append(
            features(
                candidate.text,
                dialogue,
                float(reply @ message),
                rel_ctx,
                kind=kinds[i],
                confidence=candidate.score,
                truncated=candidate.truncated,
            )
        )
    return np.stack(rows) if rows else np.zeros((0, len(FEATURES)))


REMEMBERED = 8192
"""Embeddings of recent texts the selector keeps (the users' messages and the bot's replies: the
context of their conversations' next turns), besides the fixed reply texts given to ``warm``,
which it keeps for good."""


class Selector:
    """Scores candidates: ``assess`` returns them with ``quality`` filled in."""

    def __init__(self, encoder: Encoder, weights: Weights | None = None) -> None:
        self.encoder = encoder
        self.weights = weights or load_weights()
        self.version = self.weights.version
        self._fixed: dict[str, np.ndarray] = {}
        self._recent: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encoder_key(self) -> str:
        """What names the encoder's embeddings in a cache: its kind and precision (int8 embeds differently)."""
        return f"{type(self.encoder).__name__}:{getattr(self.encoder, 'precision', '')}"

    def warm(self, texts: Sequence[str], batch: int = 64, cache: Path | None = None) -> None:
        """Embed fixed reply texts ahead of traffic (at load) and keep them for good, so that no message
        waits for them: the persona bank, the backchannel's and the canned replies, the fallback lines.

        With ``cache`` (a file named for the encoder and the texts), the embeddings are read from it when
        it exists and written to it otherwise: a restarted worker does not embed the whole bank again.
        """
        wanted = [t for t in dict.fromkeys(texts) if t and t not in self._fixed]
        vectors = _read_cache(cache, len(wanted))
        if vectors is None:
            parts = [self.encoder.encode(wanted[i : i + batch]) for i in range(0, len(wanted), batch)]
            vectors = np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)
            _write_cache(cache, vectors)
        with self._lock:
            self._fixed.update(zip(wanted, vectors, strict=True))

    def _remember(
        self, embedded: Mapping[str, np.ndarray], candidates: Sequence[Proposal], kinds: Sequence[str]
    ) -> None:
        """Keep what this call embedded, but generated replies, which rarely come again."""
        generated = {c.text for c, kind in zip(candidates, kinds, strict=True) if kind == "generator"}
        with self._lock:
            for text, vector in embedded.items():
                if text not in generated and text not in self._fixed:
                    self._recent.pop(text, None)  # newest last: the oldest is forgotten first
                    self._recent[text] = vector
            while len(self._recent) > REMEMBERED:
                del self._recent[next(iter(self._recent))]

    def assess(
        self,
        dialogues: Sequence[Dialogue],
        candidates: Sequence[Proposal],
        kinds: str | Sequence[str],
        message_vectors: np.ndarray | None = None,
    ) -> list[Proposal]:
        """The candidates with ``quality`` filled in; ``kinds``: one of ``KINDS`` for all, or one each."""
        if not candidates:
            return []
        kinds = [kinds] * len(candidates) if isinstance(kinds, str) else list(kinds)
        embedded: dict[str, np.ndarray] = {}
        if message_vectors is not None:  # a message is context for its conversation's next turn
            embedded.update((d.text, v) for d, v in zip(dialogues, message_vectors, strict=True))
        with self._lock:  # looked up in place: the fixed texts are thousands, a call needs a few
            found = ((t, self._fixed.get(t, self._recent.get(t))) for t in _texts(dialogues, candidates))
            known = {t: v for t, v in found if v is not None}
        rows = _rows(self.encoder, dialogues, candidates, kinds, message_vectors, ChainMap(embedded, known))
        self._remember(embedded, candidates, kinds)
        quality = self.weights.quality(rows)
        return [
            replace(c, quality=0.0 if ruled_out(c.text, d) else round(float(q), 4))
            for c, d, q in zip(candidates, dialogues, quality, strict=True)
        ]


def _texts(dialogues: Sequence[Dialogue], candidates: Sequence[Proposal]) -> set[str]:
    """Every text ``_rows`` may need an embedding of."""
    return {c.text or " " for c in candidates} | {t for d in dialogues for t in [*context_turns(d), d.text]}


def ruled_out(text: str, dialogue: Dialogue) -> bool:
    """Never said, whatever the score: empty, unsafe, or a copy of the user's message."""
    return not words(text) or unsafe(text) or overlap(text, dialogue.text) >= COPY_OVERLAP


def _read_cache(path: Path | None, rows: int) -> np.ndarray | None:
    if path is None or not path.exists():
        return None
    try:
        vectors = np.load(path)
    except (OSError, ValueError):
        return None
    return vectors if len(vectors) == rows else None


def _write_cache(path: Path | None, vectors: np.ndarray) -> None:
    """Best effort: a read-only model folder only means embedding the bank at each start."""
    if path is None or not len(vectors):
        return
    try:
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vectors)
        tmp.replace(path)
    except OSError:
        pass
