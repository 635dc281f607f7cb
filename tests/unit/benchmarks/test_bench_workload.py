"""The load's script: canned share, conversation order, light load."""

from __future__ import annotations

import random

from benchmarks.bench import workload
from models.persona import CANNED_INTENTS


def test_canned_share_is_exact() -> None:
    got = workload.kinds(1000, 0.3, random.Random(0))
    assert got.count("canned") == 300 and len(got) == 1000


def test_messages_interleave_conversations_in_turn_order() -> None:
    plan = workload.plan(120, 10, seed=1)
    assert [p.conversation for p in plan[:12]] == [*range(10), 0, 1]
    for conversation in range(10):
        turns = [p.turn for p in plan if p.conversation == conversation]
        assert turns == list(range(1, 13))
    assert sum(p.kind == "canned" for p in plan) == 36
    assert all(p.text in workload.canned_texts() for p in plan if p.kind == "canned")
    assert all(p.text in workload.CHAT for p in plan if p.kind == "chat")


def test_same_seed_same_script() -> None:
    assert workload.plan(50, 5, seed=3) == workload.plan(50, 5, seed=3)
    assert workload.plan(50, 5, seed=3) != workload.plan(50, 5, seed=4)


def test_canned_texts_cover_only_canned_intents() -> None:
    assert set(workload.CANNED) <= CANNED_INTENTS


def test_conversations_and_light_load() -> None:
    assert workload.conversations_for(120, 12) == 10
    assert workload.conversations_for(5, 12) == 1
    light = workload.light(20)
    assert len({p.conversation for p in light}) == 20 and all(p.turn == 1 and p.kind == "canned" for p in light)
