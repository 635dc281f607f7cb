"""The response selector's signals and scoring, and the shipped weights on the fitting data."""

from __future__ import annotations

import numpy as np
import pytest

from models import selector
from models.build import selector_fitting
from models.selector import FEATURES, Selector, Weights, features, overlap, unsafe
from models.types import Dialogue, Proposal, Utterance

ASKED = Dialogue(
    (
        Utterance("user", "i adopted a puppy"),
        Utterance("bot", "A puppy! Name, now."),
        Utterance("user", "his name is biscuit"),
    )
)


def feature(row: np.ndarray, name: str) -> float:
    return float(row[FEATURES.index(name)])


class BagOfWords:
    """A small deterministic sentence encoder: hashed word counts, unit length."""

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64))
        for i, text in enumerate(texts):
            for word in selector.words(text):
                out[i, hash(word) % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)


class Counting(BagOfWords):
    """The same encoder, remembering the texts of each call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return super().encode(texts)


@pytest.mark.parametrize("text", ["you should kill yourself", "what a RETARD", "f*ck it, fuck this"])
def test_unsafe_replies_are_caught(text: str) -> None:
    assert unsafe(text)


@pytest.mark.parametrize("text", ["Biscuit is a perfect name!", "Skills kill boredom.", "I'd die for that cake"])
def test_ordinary_replies_are_safe(text: str) -> None:
    assert not unsafe(text)


def test_signals() -> None:
    echo = features("his name is biscuit", ASKED, 0.9, 0.5, kind="generator", confidence=-1.0)
    assert feature(echo, "echo") == 1.0 and feature(echo, "generated") == 1.0 and feature(echo, "confidence") == -1.0
    repeat = features("A puppy! Name, now.", ASKED, 0.2, 0.2, kind="retrieval", confidence=-3.0)
    assert feature(repeat, "repeat") == 1.0 and feature(repeat, "confidence") == 0.0  # only the generator's counts
    hedge = features("I'm sorry, but as an AI I cannot own a dog.", ASKED, 0.3, 0.3, kind="generator")
    assert feature(hedge, "hedge") == 1.0 and feature(hedge, "unfinished") == 0.0
    cut = features("Biscuit is such a", ASKED, 0.5, None, kind="generator", truncated=True)
    assert feature(cut, "unfinished") == 1.0 and feature(cut, "rel_ctx") == feature(cut, "rel_msg")
    asks = features("Biscuit! Does he bite?", ASKED, 0.5, 0.5, kind="backchannel")
    assert feature(asks, "question") == 1.0 and 0.0 < feature(asks, "length") < 1.0
    assert feature(asks, "backchannel") == 1.0 and feature(asks, "generated") == 0.0


def test_overlap() -> None:
    assert overlap("I love pizza", "i LOVE pizza!") == 1.0
    assert overlap("pizza", "sushi") == 0.0 and overlap("", "x") == 0.0


def test_assess_fills_quality_and_zeroes_unsafe_or_empty() -> None:
    weights = Weights(tuple(1.0 if f == "rel_msg" else 0.0 for f in FEATURES), -0.5, 0.9)
    scorer = Selector(BagOfWords(), weights)
    candidates = [
        Proposal("biscuit is a great name", -1.0),
        Proposal("taxes are due", -1.0),
        Proposal("screw you, bastard", -1.0),
        Proposal("", 0.0),
        Proposal("His name is Biscuit!", -0.5),
    ]
    out = scorer.assess([ASKED] * 5, candidates, "generator")
    qualities = [c.quality for c in out]
    assert qualities[0] is not None and qualities[1] is not None and qualities[0] > qualities[1]
    assert qualities[2] == 0.0 and qualities[3] == 0.0 and qualities[4] == 0.0  # unsafe, empty, a copy
    assert [c.text for c in out][:2] == ["biscuit is a great name", "taxes are due"]


def test_message_vectors_can_be_passed_in() -> None:
    enc = BagOfWords()
    scorer = Selector(enc, Weights(tuple(1.0 for _ in FEATURES), 0.0, 0.9))
    given = scorer.assess([ASKED], [Proposal("biscuit!", 0.0)], "retrieval", message_vectors=enc.encode([ASKED.text]))
    assert given == scorer.assess([ASKED], [Proposal("biscuit!", 0.0)], "retrieval")


def test_accept_threshold() -> None:
    pairs = [(0.9, 0.5)] * 20 + [(0.5, 0.8)] * 20 + [(0.7, 0.75)] * 3
    threshold = selector_fitting.accept_threshold(pairs)
    assert 0.7 < threshold <= 0.9
    assert selector_fitting.accept_threshold([(0.5, 0.9)] * 10) == 1.0  # the generator always wins: always wait


def test_fit_learns_from_labels() -> None:
    rng = np.random.default_rng(0)
    rows = rng.uniform(0, 1, (400, len(FEATURES)))
    labels = (rows[:, FEATURES.index("rel_msg")] - rows[:, FEATURES.index("echo")] > 0).astype(int)
    fitted = selector_fitting.fit(rows, labels, [])
    coef = dict(zip(FEATURES, fitted["coef"], strict=True))
    assert coef["rel_msg"] > 1.0 and coef["echo"] < -1.0 and fitted["accept_now"] == 1.0


def test_shipped_weights_prefer_the_written_reply_over_one_from_another_conversation(built_config: object) -> None:
    """On the fitting conversations, the selector ranks the reply written for a turn above one
    written for another conversation most of the time."""
    from models import registry

    scorer = Selector(registry.encoder_for(built_config))  # type: ignore[arg-type]
    conversations = selector_fitting.fit_conversations()
    dialogues, right, wrong = [], [], []
    for k, (_, turns) in enumerate(conversations):
        other = conversations[(k + 7) % len(conversations)][1]
        dialogues.append(Dialogue(tuple(turns[:1])))
        right.append(Proposal(turns[1].text, 0.0))
        wrong.append(Proposal(other[1].text, 0.0))
    good = [c.quality or 0.0 for c in scorer.assess(dialogues, right, "retrieval")]
    bad = [c.quality or 0.0 for c in scorer.assess(dialogues, wrong, "retrieval")]
    wins = np.mean(np.array(good) > np.array(bad))
    assert wins >= 0.75, wins


def test_fixed_reply_texts_are_embedded_once() -> None:
    encoder = Counting()
    calls = encoder.calls
    scorer = Selector(encoder, Weights(tuple(1.0 for _ in FEATURES), 0.0, 0.9))
    bank = [Proposal("Biscuit! Does he bite?", 0.5), Proposal("Oh really? Tell me more!", 0.0)]
    first = scorer.assess([ASKED] * 2, bank, ["retrieval", "backchannel"])
    later = Dialogue((*ASKED.history, Utterance("bot", "Cute!"), Utterance("user", "he's tiny")))
    scorer.assess([later] * 2, bank, ["retrieval", "backchannel"])
    assert calls[0] == [c.text for c in bank] + selector.context_turns(ASKED) + [ASKED.text]
    assert calls[1] == ["Cute!", "he's tiny"]  # the replies and the earlier message are remembered
    assert scorer.assess([ASKED] * 2, bank, ["retrieval", "backchannel"]) == first


def test_warm_texts_are_never_embedded_for_a_message() -> None:
    encoder = Counting()
    calls = encoder.calls
    scorer = Selector(encoder, Weights(tuple(1.0 for _ in FEATURES), 0.0, 0.9))
    scorer.warm(["Biscuit! Does he bite?", "Oh really? Tell me more!", "Biscuit! Does he bite?"])
    assert calls == [["Biscuit! Does he bite?", "Oh really? Tell me more!"]]
    scorer.assess([ASKED], [Proposal("Oh really? Tell me more!", 0.0)], "backchannel")
    assert "Oh really? Tell me more!" not in calls[1]


def test_the_conversations_context_is_embedded_once() -> None:
    """The bot's last reply and the user's previous message are the context of every candidate of the
    next turn: embedded once, then remembered (they were embedded on every turn before)."""
    encoder = Counting()
    calls = encoder.calls
    scorer = Selector(encoder, Weights(tuple(1.0 for _ in FEATURES), 0.0, 0.9))
    reply = [Proposal("Oh really? Tell me more!", 0.0)]
    scorer.assess([ASKED], reply, "backchannel")
    calls.clear()
    scorer.assess([ASKED], reply, "backchannel")
    scorer.assess([ASKED, ASKED], reply * 2, "backchannel")
    assert calls == []


def test_warm_texts_outlive_the_recent_ones(monkeypatch) -> None:
    monkeypatch.setattr(selector, "REMEMBERED", 4)
    encoder = Counting()
    calls = encoder.calls
    scorer = Selector(encoder, Weights(tuple(1.0 for _ in FEATURES), 0.0, 0.9))
    scorer.warm(["Oh really? Tell me more!"])
    for k in range(10):  # many other conversations pass
        scorer.assess([Dialogue((Utterance("user", f"message {k}"),))], [Proposal(f"reply {k}", 0.0)], "retrieval")
    calls.clear()
    scorer.assess(
        [Dialogue((Utterance("user", "message 9"),))], [Proposal("Oh really? Tell me more!", 0.0)], "backchannel"
    )
    assert calls == []  # the fixed line and the newest message are still known
    scorer.assess([Dialogue((Utterance("user", "message 0"),))], [Proposal("reply 0", 0.0)], "retrieval")
    assert calls == [["reply 0", "message 0"]]  # the oldest recent texts were forgotten
