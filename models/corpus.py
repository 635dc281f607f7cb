"""The project's own multi-turn dialogue corpus, which the default generator is trained on.

Every dialogue is composed from scenes written by the project (``data/dialogue_scenes.json``):
a scene is a user turn and a bot reply in the persona's sassy tone that answers it, with
slots (hobbies, music, names, days, ...) filled from one set of facts drawn per dialogue
(``data/dialogue_slots.json``). A scene may establish a fact (``sets``); later scenes may
refer back to it (``needs``) or stand in while it is still unknown (``forbid``), so the
right reply depends on the earlier turns and not only on the last one. No third-party
text; deterministic given a seed.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from models.hashing import digest_value
from models.types import Utterance

DATA_DIR = Path(__file__).parent / "data"
DialogueTurns = tuple[Utterance, ...]

_CALLBACK_WEIGHT = 6.0
_MID_SCENES = (2, 4)


@dataclass(frozen=True, slots=True)
class Scene:
    """One user turn template set and the bot replies that answer it."""

    id: str
    kind: str
    user: tuple[str, ...]
    bot: tuple[str, ...]
    needs: frozenset[str] = frozenset()
    forbid: frozenset[str] = frozenset()
    sets: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Corpus:
    """Dialogues split into a training part and a held-out part."""

    train: tuple[DialogueTurns, ...]
    heldout: tuple[DialogueTurns, ...]

    @property
    def exchanges(self) -> int:
        """User/bot turn pairs over both splits."""
        return sum(count_exchanges(d) for d in (*self.train, *self.heldout))


@cache
def load_scenes() -> tuple[Scene, ...]:
    """The scene templates shipped with the package."""
    raw = json.loads((DATA_DIR / "dialogue_scenes.json").read_text(encoding="utf-8"))
    return tuple(_scene(item) for item in raw)


@cache
def load_slots() -> dict[str, tuple[str, ...]]:
    """The slot values shipped with the package, by slot name."""
    raw = json.loads((DATA_DIR / "dialogue_slots.json").read_text(encoding="utf-8"))
    return {name: tuple(values) for name, values in raw.items()}


def _scene(item: dict[str, object]) -> Scene:
    def strings(key: str) -> tuple[str, ...]:
        value = item.get(key, [])
        assert isinstance(value, list), f"scene {item.get('id')}: {key} must be a list"
        return tuple(str(v) for v in value)

    return Scene(
        id=str(item["id"]),
        kind=str(item["kind"]),
        user=strings("user"),
        bot=strings("bot"),
        needs=frozenset(strings("needs")),
        forbid=frozenset(strings("forbid")),
        sets=frozenset(strings("sets")),
    )


def sample_facts(rng: random.Random, slots: dict[str, tuple[str, ...]]) -> dict[str, str]:
    """One value per slot for a whole dialogue, plus ``Capitalised`` variants of each key."""
    facts = {name: rng.choice(values) for name, values in slots.items()}
    capitals = {_cap(name): _cap(value) for name, value in facts.items()}
    return {**facts, **capitals}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def topic_scenes(scenes: Sequence[Scene]) -> frozenset[str]:
    """Ids of the scenes that establish a fact some other scene refers back to."""
    needed = frozenset().union(*(s.needs for s in scenes))
    return frozenset(s.id for s in scenes if s.sets & needed and not s.needs)


def eligible(scene: Scene, kind: str, known: set[str], used: set[str]) -> bool:
    """Whether ``scene`` may come next, given what the dialogue has established."""
    return (
        scene.kind == kind
        and scene.id not in used
        and scene.needs <= known
        and not (scene.forbid & known)
    )


def pick_scene(
    rng: random.Random, scenes: Sequence[Scene], role: str, known: set[str], used: set[str]
) -> Scene | None:
    """A random eligible scene for ``role`` (a scene kind, or "topic" for a fact-setting one).

    Scenes that refer back to earlier turns are favoured, so that the right reply often
    depends on more than the last turn.
    """
    kind = "mid" if role == "topic" else role
    options = [s for s in scenes if eligible(s, kind, known, used)]
    if role == "topic":
        topics = topic_scenes(scenes)
        options = [s for s in options if s.id in topics]
    if not options:
        return None
    weights = [_CALLBACK_WEIGHT if s.needs else 1.0 for s in options]
    return rng.choices(options, weights=weights, k=1)[0]


def casual(text: str, rng: random.Random) -> str:
    """Users type loosely: sometimes lower-case, sometimes without the final punctuation."""
    if rng.random() < 0.3:
        text = text[:1].lower() + text[1:]
    if rng.random() < 0.25 and text[-1:] in ".!?":
        text = text[:-1]
    return text


def play(scene: Scene, facts: dict[str, str], rng: random.Random) -> tuple[Utterance, Utterance]:
    """One exchange of ``scene`` with the dialogue's facts filled in."""
    user = casual(rng.choice(scene.user).format(**facts), rng)
    bot = rng.choice(scene.bot).format(**facts)
    return Utterance("user", user), Utterance("bot", bot)


def plan_roles(rng: random.Random) -> list[str]:
    """The shape of one dialogue: an optional opener, one or two topics that set facts,
    other scenes in between (often referring back to the topics), an optional goodbye."""
    middle = ["topic"] * rng.randint(0, 1) + ["mid"] * rng.randint(*_MID_SCENES)
    rng.shuffle(middle)
    opener = ["open"] if rng.random() < 0.5 else []
    return opener + ["topic", *middle] + (["close"] if rng.random() < 0.5 else [])


def compose_dialogue(rng: random.Random) -> DialogueTurns:
    """One multi-turn dialogue, alternating user and bot, starting with the user."""
    scenes, facts = load_scenes(), sample_facts(rng, load_slots())
    known: set[str] = set()
    used: set[str] = set()
    turns: list[Utterance] = []
    for role in plan_roles(rng):
        scene = pick_scene(rng, scenes, role, known, used)
        if scene is None:
            continue
        turns.extend(play(scene, facts, rng))
        known |= scene.sets
        used.add(scene.id)
    return tuple(turns)


def generate(n_dialogues: int = 2400, seed: int = 0, heldout_fraction: float = 0.1) -> Corpus:
    """The whole corpus, split into train and held-out dialogues (deterministic in ``seed``)."""
    rng = random.Random(seed)
    dialogues = [compose_dialogue(rng) for _ in range(n_dialogues)]
    order = list(range(n_dialogues))
    random.Random(seed + 1).shuffle(order)
    n_heldout = max(1, round(n_dialogues * heldout_fraction))
    held = set(order[:n_heldout])
    return Corpus(
        train=tuple(d for i, d in enumerate(dialogues) if i not in held),
        heldout=tuple(d for i, d in enumerate(dialogues) if i in held),
    )


def count_exchanges(dialogue: DialogueTurns) -> int:
    """User turns immediately answered by a bot turn."""
    pairs = itertools.pairwise(dialogue)
    return sum(1 for a, b in pairs if a.speaker == "user" and b.speaker == "bot")


def to_text(dialogue: Sequence[Utterance], eos: str) -> str:
    """DialoGPT-style text: every turn followed by the end-of-sequence token."""
    return "".join(turn.text + eos for turn in dialogue)


def digest(corpus: Corpus) -> str:
    """Short content hash of the corpus, part of the generator's version."""
    def rows(part: tuple[DialogueTurns, ...]) -> list[list[list[str]]]:
        return [[[t.speaker, t.text] for t in d] for d in part]

    return digest_value({"train": rows(corpus.train), "heldout": rows(corpus.heldout)})
