"""What the benchmark says: conversations of canned-intent and everyday messages.

The texts are written for the benchmark (not taken from the training data).
About ``canned_share`` of the messages ask for something banter answers with a
canned persona line (greetings, weather, "google it" questions, love
declarations, ...); the rest is everyday chit-chat, short and long, some of it
out of scope. Pure functions: the same seed gives the same script.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

Kind = Literal["canned", "chat"]

CANNED: dict[str, tuple[str, ...]] = {
    "greeting": ("hey hey, how's it going over there", "hello you!", "good morning sunshine"),
    "goodbye": ("alright I'm heading out, talk soon", "bye for now!", "logging off, night"),
    "how_are_you": ("how are you doing today?", "how's your day been so far"),
    "who_are_you": ("wait, who am I even talking to?", "are you a real person or a bot"),
    "creator": ("who built you?", "which company made you"),
    "age": ("how old are you exactly?", "when were you born"),
    "location": ("where do you live?", "what city are you in right now"),
    "love_declaration": ("I think I'm in love with you", "I love you so much, bot"),
    "best_friend": ("will you be my best friend?", "you're honestly my best buddy"),
    "weather": ("is it going to rain tomorrow?", "what's the weather looking like this weekend"),
    "search_it": (
        "what's the capital of Australia?",
        "how tall is the Eiffel tower",
        "who wrote the first Harry Potter book",
    ),
    "thanks": ("thanks a lot, you're great", "thank you so much for that"),
    "compliment": ("you're really funny, you know that?", "you are so smart"),
    "insult": ("you're the dumbest bot ever", "ugh you are so useless"),
    "joke_request": ("tell me something funny", "got any good jokes?"),
    "selfie": ("send me a picture of yourself", "can I see a selfie?"),
    "birthday": ("it's my birthday today!", "guess who turns thirty today"),
    "apology": ("sorry I was rude earlier", "my bad, I apologise"),
}

CHAT: tuple[str, ...] = (
    "I just got back from the gym and I can't feel my legs",
    "my cat knocked a glass off the table again this morning",
    "do you ever listen to jazz when it's raining?",
    "I'm thinking about learning to play the guitar this year",
    "we had pasta for dinner, my brother burned the garlic bread",
    "work was so slow today, I reorganised my whole desk twice",
    "I finally finished that series everyone kept talking about",
    "my neighbour's dog barks every time a leaf falls",
    "I want to plan a road trip along the coast next summer",
    "ugh, mondays",
    "I tried baking sourdough and it came out like a brick",
    "my best friend is moving to another city and I'm kind of sad",
    "what would you do with a free afternoon?",
    "I've been reading a novel about a lighthouse keeper, it's so calm",
    "my boss wants the report by tomorrow and I haven't started",
    "do you think pineapple belongs on pizza",
    "I keep forgetting to water my plants",
    "we're adopting a puppy next week!",
    "my phone screen cracked and I'm too lazy to fix it",
    "the bus was twenty minutes late again",
    "I started running in the mornings, it's actually nice",
    "honestly I'm bored out of my mind right now",
    "my little sister won her football match today",
    "I can't decide between pizza and sushi tonight",
    "I stayed up way too late watching videos about octopuses",
    "exams start next week and I'm panicking a bit",
    "I painted my room green, not sure I like it",
    "there's a concert in the park this weekend, might go",
    "my grandma taught me how to knit a scarf",
    "coffee or tea, which team are you on",
    "I had a weird dream about flying over the ocean",
    "the new cafe downstairs makes amazing croissants",
    "I've been feeling a bit lonely lately, to be honest",
    "my roommate keeps eating my yoghurt",
    "what's your opinion on quantum tunnelling in semiconductors",
    "I bought a vintage record player at a flea market",
    "we're having a barbecue if the sun stays out",
    "I just got a promotion at work!!",
    "my knee hurts after hiking all weekend",
    "why do cats always sit on keyboards",
    "I think I need a holiday, somewhere warm with a beach",
    "I spent three hours fixing a bug that was a missing comma",
    "lol that's hilarious",
    "ok",
    "hmm not sure what you mean",
    "tell me more about that",
    "my car makes a strange clicking noise when I turn left",
    "I'm learning Spanish on an app, forty days streak so far",
    "do you prefer mountains or the sea",
    "my dad keeps sending me blurry photos of his tomatoes",
)


@dataclass(frozen=True, slots=True)
class Planned:
    """One message of the load: its conversation, turn (1-based), text and kind."""

    conversation: int
    turn: int
    text: str
    kind: Kind


def canned_texts() -> list[str]:
    """Every canned-intent text, intent by intent."""
    return [text for texts in CANNED.values() for text in texts]


def kinds(count: int, canned_share: float, rng: random.Random) -> list[Kind]:
    """``count`` kinds, exactly ``round(count * canned_share)`` of them canned, shuffled."""
    canned = round(count * canned_share)
    out: list[Kind] = ["chat"] * count
    out[:canned] = ["canned"] * canned
    rng.shuffle(out)
    return out


def plan(count: int, conversations: int, canned_share: float = 0.3, seed: int = 0) -> list[Planned]:
    """``count`` messages over ``conversations`` conversations, in sending order.

    Message ``i`` belongs to conversation ``i % conversations``: conversations
    advance together, one turn each per round, so each stays in order and the
    next turn is sent whatever became of the previous one.
    """
    rng = random.Random(seed)
    texts: dict[Kind, list[str]] = {"canned": canned_texts(), "chat": list(CHAT)}
    out = []
    for i, kind in enumerate(kinds(count, canned_share, rng)):
        text = rng.choice(texts[kind])
        out.append(Planned(i % conversations, i // conversations + 1, text, kind))
    return out


def conversations_for(count: int, turns: int) -> int:
    """How many conversations give each about ``turns`` turns (at least one conversation)."""
    return max(1, count // max(1, turns))


def light(count: int) -> list[Planned]:
    """``count`` canned messages, each the first turn of its own conversation."""
    texts = canned_texts()
    return [Planned(i, 1, texts[i % len(texts)], "canned") for i in range(count)]
