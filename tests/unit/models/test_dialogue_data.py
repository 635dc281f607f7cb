"""The project-written multi-turn dialogue sets: the held-out set for `banter models
eval-dialogue` (user turns only) and the set the response selector is fitted on (both
sides), and the persona dialogues the generator is fine-tuned on. Structure, sizes, and
that the sets (and the held-out set and the training data) share no text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

DATA_DIR = Path(__file__).resolve().parents[3] / "models" / "data"
EVAL_FILE = DATA_DIR / "eval_dialogues.json"
SELECTOR_FILE = DATA_DIR / "selector_dialogues.json"
# Files the encoder, intent head, responder and generator are trained or built from.
TRAINING_FILES = ("intents.json", "oos.json", "responses.json", "canned.json", "generator_dialogues.json")
GENERATOR_FILE = DATA_DIR / "generator_dialogues.json"

BLOCKED = re.compile(r"\b(idiot|stupid|ugly|fat|hate you|shut up|damn|hell|sexy|kill\w*)\b", re.I)
MAX_CHARS = 200


def norm(text: str) -> str:
    return " ".join(text.casefold().split())


def load_any(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def load(path: Path) -> dict[str, Any]:
    data = load_any(path)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def eval_set() -> dict[str, Any]:
    return load(EVAL_FILE)


@pytest.fixture(scope="module")
def selector_set() -> dict[str, Any]:
    return load(SELECTOR_FILE)


def eval_user_turns(data: dict[str, Any]) -> list[str]:
    return [t for c in data["conversations"] for t in c["user_turns"]]


def selector_texts(data: dict[str, Any], speaker: str) -> list[str]:
    return [t["text"] for c in data["conversations"] for t in c["turns"] if t["speaker"] == speaker]


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


# --- the held-out evaluation set -------------------------------------------------------


def test_eval_set_has_40_conversations_of_6_to_10_user_turns(eval_set: dict[str, Any]) -> None:
    assert eval_set["version"] == 1
    conversations = eval_set["conversations"]
    assert len(conversations) == 40
    for c in conversations:
        assert set(c) == {"id", "topic", "user_turns"}, c.get("id")
        assert isinstance(c["topic"], str) and c["topic"].strip(), c["id"]
        assert 6 <= len(c["user_turns"]) <= 10, c["id"]


def test_eval_turns_are_non_empty_short_strings(eval_set: dict[str, Any]) -> None:
    for c in eval_set["conversations"]:
        for turn in c["user_turns"]:
            assert isinstance(turn, str), c["id"]
            assert turn.strip() == turn and turn, (c["id"], turn)
            assert len(turn) <= MAX_CHARS, (c["id"], turn)


def test_eval_ids_are_unique_and_numbered(eval_set: dict[str, Any]) -> None:
    ids = [c["id"] for c in eval_set["conversations"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"eval-\d{2}", i) for i in ids)


def test_eval_conversations_are_distinct(eval_set: dict[str, Any]) -> None:
    openings = [norm(c["user_turns"][0]) + " | " + norm(c["user_turns"][1]) for c in eval_set["conversations"]]
    assert len(openings) == len(set(openings))
    topics = [norm(c["topic"]) for c in eval_set["conversations"]]
    assert len(topics) == len(set(topics))


def test_eval_set_is_not_in_the_training_data(eval_set: dict[str, Any]) -> None:
    """Held out: no user turn of three words or more appears verbatim in a training file."""
    trained = {norm(s) for name in TRAINING_FILES for s in strings(load_any(DATA_DIR / name))}
    leaked = [t for t in eval_user_turns(eval_set) if len(t.split()) >= 3 and norm(t) in trained]
    assert not leaked


# --- the selector fitting set ----------------------------------------------------------


def test_selector_set_has_80_conversations_of_4_to_8_exchanges(selector_set: dict[str, Any]) -> None:
    assert selector_set["version"] == 1
    conversations = selector_set["conversations"]
    assert len(conversations) == 80
    for c in conversations:
        assert set(c) == {"id", "turns"}, c.get("id")
        turns = c["turns"]
        assert len(turns) % 2 == 0, c["id"]
        assert 4 <= len(turns) // 2 <= 8, c["id"]


def test_selector_turns_alternate_starting_with_the_user(selector_set: dict[str, Any]) -> None:
    for c in selector_set["conversations"]:
        speakers = [t["speaker"] for t in c["turns"]]
        assert speakers == ["user", "bot"] * (len(speakers) // 2), c["id"]
        for t in c["turns"]:
            assert set(t) == {"speaker", "text"}, c["id"]


def test_selector_texts_are_non_empty_short_strings(selector_set: dict[str, Any]) -> None:
    for c in selector_set["conversations"]:
        for t in c["turns"]:
            text = t["text"]
            assert isinstance(text, str), c["id"]
            assert text.strip() == text and text, (c["id"], text)
            assert len(text) <= MAX_CHARS, (c["id"], text)


def test_selector_ids_are_unique_and_numbered(selector_set: dict[str, Any]) -> None:
    ids = [c["id"] for c in selector_set["conversations"]]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"fit-\d{2}", i) for i in ids)


def test_selector_bot_lines_are_specific_and_clean(selector_set: dict[str, Any]) -> None:
    """Every bot line is written for its place: none is reused, none is offensive."""
    bot = selector_texts(selector_set, "bot")
    assert len({norm(t) for t in bot}) == len(bot)
    assert not [t for t in bot if BLOCKED.search(t)]


# --- the two sets apart ----------------------------------------------------------------


def test_no_user_turn_is_shared_between_the_sets(eval_set: dict[str, Any], selector_set: dict[str, Any]) -> None:
    held_out = {norm(t) for t in eval_user_turns(eval_set)}
    fitted_user = {norm(t) for t in selector_texts(selector_set, "user")}
    fitted_bot = {norm(t) for t in selector_texts(selector_set, "bot")}
    assert not held_out & fitted_user
    assert not held_out & fitted_bot


# --- the generator's fine-tuning set ---------------------------------------------------


def test_generator_set_alternates_user_and_bot_and_its_bot_lines_are_clean() -> None:
    data = load(GENERATOR_FILE)
    conversations = data["conversations"]
    assert len(conversations) >= 300
    ids = [c["id"] for c in conversations]
    assert len(ids) == len(set(ids))
    for c in conversations:
        speakers = [t["speaker"] for t in c["turns"]]
        assert speakers == ["user", "bot"] * (len(speakers) // 2) and speakers, c["id"]
        for t in c["turns"]:
            assert t["text"].strip() == t["text"] and t["text"] and len(t["text"]) <= MAX_CHARS, (c["id"], t)
    bot = [t["text"] for c in conversations for t in c["turns"] if t["speaker"] == "bot"]
    assert not [t for t in bot if BLOCKED.search(t)]


def test_the_generator_is_not_fine_tuned_on_the_selectors_dialogues(selector_set: dict[str, Any]) -> None:
    """The selector is fitted on its dialogues' generated replies: the generator must not have seen them."""
    trained = {norm(s) for s in strings(load_any(GENERATOR_FILE))}
    fitted = selector_texts(selector_set, "user") + selector_texts(selector_set, "bot")
    assert not [t for t in fitted if len(t.split()) >= 3 and norm(t) in trained]
