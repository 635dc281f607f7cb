"""The project's dialogue corpus: size, variety, determinism, and replies that refer back."""

from __future__ import annotations

import re

import pytest

from models import corpus
from models.corpus import Corpus, DialogueTurns

BLOCKED = re.compile(r"\b(idiot|stupid|ugly|fat|hate you|shut up|damn|hell|sexy|kill)\b", re.I)


@pytest.fixture(scope="module")
def full() -> Corpus:
    return corpus.generate()


def all_dialogues(c: Corpus) -> tuple[DialogueTurns, ...]:
    return (*c.train, *c.heldout)


def test_default_corpus_has_at_least_2000_exchanges_and_a_held_out_split(full: Corpus) -> None:
    assert full.exchanges >= 2000
    assert len(full.heldout) >= 0.05 * len(full.train)
    assert not set(full.train) & set(full.heldout)


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    first = corpus.generate(n_dialogues=100, seed=3)
    assert first == corpus.generate(n_dialogues=100, seed=3)
    assert corpus.digest(first) == corpus.digest(corpus.generate(n_dialogues=100, seed=3))
    assert corpus.digest(first) != corpus.digest(corpus.generate(n_dialogues=100, seed=4))


def test_dialogues_alternate_user_and_bot(full: Corpus) -> None:
    for dialogue in all_dialogues(full):
        speakers = [turn.speaker for turn in dialogue]
        assert speakers[0::2] == ["user"] * len(speakers[0::2])
        assert speakers[1::2] == ["bot"] * len(speakers[1::2])
        assert speakers[-1] == "bot"
        assert corpus.count_exchanges(dialogue) == len(dialogue) // 2


def test_every_slot_is_filled_and_no_turn_is_empty(full: Corpus) -> None:
    for dialogue in all_dialogues(full):
        for turn in dialogue:
            assert turn.text.strip()
            assert "{" not in turn.text and "}" not in turn.text


def test_corpus_is_varied(full: Corpus) -> None:
    turns = [t for d in all_dialogues(full) for t in d]
    bot = {t.text for t in turns if t.speaker == "bot"}
    user = {t.text for t in turns if t.speaker == "user"}
    assert len(bot) >= 1500
    assert len(user) >= 1500
    lengths = {len(d) for d in all_dialogues(full)}
    assert len(lengths) >= 4


def test_every_scene_is_used(full: Corpus) -> None:
    texts = {t.text.lower() for d in all_dialogues(full) for t in d if t.speaker == "user"}
    for scene in corpus.load_scenes():
        stems = [u.split("{")[0].strip().lower().rstrip(".!?") for u in scene.user]
        assert any(stem and any(stem in t for t in texts) for stem in stems), scene.id


def referred_back(dialogue: DialogueTurns, values: set[str]) -> bool:
    """A bot turn names something said earlier, but not in the turn it answers."""
    for i in range(3, len(dialogue), 2):
        answered, earlier = dialogue[i - 1].text, " ".join(t.text for t in dialogue[: i - 1])
        for value in values:
            if value in dialogue[i].text and value not in answered and value in earlier:
                return True
    return False


def test_bot_replies_often_refer_back_to_earlier_turns(full: Corpus) -> None:
    slots = corpus.load_slots()
    values = {v for name in ("hobby", "crush", "friend", "pet_name", "genre", "food", "event")
              for v in slots[name]}
    dialogues = all_dialogues(full)
    share = sum(referred_back(d, values) for d in dialogues) / len(dialogues)
    assert share >= 0.4


def test_bot_replies_stay_friendly(full: Corpus) -> None:
    for dialogue in all_dialogues(full):
        for turn in dialogue:
            if turn.speaker == "bot":
                assert not BLOCKED.search(turn.text), turn.text


def test_to_text_ends_every_turn_with_eos(full: Corpus) -> None:
    dialogue = full.train[0]
    text = corpus.to_text(dialogue, "<eos>")
    assert text.count("<eos>") == len(dialogue)
    assert text.endswith("<eos>")
