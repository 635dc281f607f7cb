"""Canned persona replies and the project's data files (sizes, no duplicates, split)."""

from __future__ import annotations

import pytest

from models import dataset, persona, responder
from models.build import response_bank


def test_canned_intents_match_the_data_and_the_intent_set() -> None:
    canned = dataset.read_json(dataset.CANNED_FILE)
    assert set(canned) == persona.CANNED_INTENTS
    assert set(dataset.intent_examples()) >= persona.CANNED_INTENTS
    assert {"weather", "search_it", "greeting", "love_declaration"} <= persona.CANNED_INTENTS


@pytest.mark.parametrize("intent", sorted(persona.CANNED_INTENTS))
def test_canned_replies_are_varied(intent: str) -> None:
    options = persona.replies_for(intent)
    assert len(options) >= 5 and len(set(options)) == len(options)
    assert len({persona.canned_reply(intent, seed) for seed in range(40)}) >= 3


def test_canned_reply_is_deterministic_per_seed() -> None:
    assert persona.canned_reply("weather", 7) == persona.canned_reply("weather", 7)
    assert persona.canned_reply("weather", 7) in persona.replies_for("weather")


def test_unknown_intent_raises() -> None:
    with pytest.raises(KeyError):
        persona.canned_reply("music", 1)


def test_intent_data_size_and_uniqueness() -> None:
    intents = dataset.intent_examples()
    assert len(intents) >= 30
    assert min(len(texts) for texts in intents.values()) >= 40
    everything = [t.lower() for texts in intents.values() for t in texts]
    oos = [t.lower() for t in dataset.oos_examples()]
    assert len(oos) >= 200
    assert len(set(everything + oos)) == len(everything) + len(oos)


def test_response_bank_size() -> None:
    entries = response_bank.bank()
    assert len(entries) >= 300
    assert len({e.text for e in entries}) == len(entries)
    assert {e.intent for e in entries} <= set(dataset.intent_examples()) | {responder.GENERAL}


def test_held_out_split_is_fixed_and_covers_every_intent() -> None:
    split = dataset.project_split()
    assert {label for _, label in split.test} == set(dataset.intent_examples())
    assert len(split.oos_test) >= 20
    assert split == dataset.project_split()
    assert not {t for t, _ in split.train} & {t for t, _ in split.test}
