"""eval-dialogue's replay, metrics, SSA arithmetic and the selector's fitting path (retrieval only:
the generator has its own tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models import registry, selector
from models.build import dialogue_eval, selector_fitting
from models.config import ModelConfig


@pytest.fixture(scope="module")
def bot(built_config: ModelConfig) -> dialogue_eval.Bot:
    scorer = selector.Selector(registry.encoder_for(built_config))
    return dialogue_eval.Bot(registry.load_understander(built_config, scorer), None, scorer)


def test_sources_map_to_kinds() -> None:
    assert [selector_fitting.kind_of(s) for s in ("written", "retrieval-2", "generator", "backchannel")] == [
        "retrieval",
        "retrieval",
        "generator",
        "backchannel",
    ]


def row(
    turn: int, source: str = "retrieval", intent: str | None = "food", confidence: float = 0.9, chosen: str = "r"
) -> dict[str, Any]:
    return {
        "conversation": "c",
        "turn": turn,
        "intent": intent,
        "intent_confidence": confidence,
        "source": source,
        "context": [["user", "hi"]],
        "candidates": {"retrieval": "r", "generator": "g", "top_retrieval": "r", "chosen": chosen},
    }


def test_the_rule_before_the_selector() -> None:
    assert dialogue_eval.rule_choice(row(2)) == "top_retrieval"
    assert dialogue_eval.rule_choice(row(6)) == "generator"
    assert dialogue_eval.rule_choice(row(2, confidence=0.3)) == "generator"
    assert dialogue_eval.rule_choice(row(2, intent="oos")) == "generator"
    assert dialogue_eval.rule_choice(row(9, source="canned", chosen="hi!")) == "chosen"


def test_ssa_per_way_of_choosing() -> None:
    turns = [row(1, chosen="r"), row(7, source="generative", chosen="g")]
    ratings = {
        "c:1:retrieval": {"sensible": 1, "specific": 1},
        "c:1:generator": {"sensible": 0, "specific": 1},
        "c:7:retrieval": {"sensible": 1, "specific": 0},
        "c:7:generator": {"sensible": 1, "specific": 1},
    }
    got = dialogue_eval.ssa(turns, ratings)
    assert got["selector (chosen)"] == {"rated": 2, "sensible": 1.0, "specific": 1.0, "ssa": 1.0}
    assert got["responder's best only"]["specific"] == 0.5
    assert got["understand step only (no generator)"] == got["responder's best only"]  # same texts, same ratings
    assert [item["key"] for item in dialogue_eval.rating_rows(turns)] == [
        "c:1:retrieval",
        "c:1:generator",
        "c:7:retrieval",
        "c:7:generator",
    ]
    # not sensible, so not specific either
    assert got["generator only"]["sensible"] == 0.5 and got["generator only"]["specific"] == 0.5


def test_distinct_n() -> None:
    assert dialogue_eval._distinct(["a b a b"], 1) == 0.5
    assert dialogue_eval._distinct(["a b", "a b"], 2) == 0.5
    assert dialogue_eval._distinct([], 2) == 0.0


def test_replay_answers_every_turn_and_feeds_replies_back(bot: dialogue_eval.Bot) -> None:
    conversations = dialogue_eval.eval_conversations()[:3]
    results = dialogue_eval.replay(bot, conversations, lambda _: None)
    assert len(results) == sum(len(turns) for _, turns in conversations)
    for result in results:
        assert result.decision.text and result.decision.source in {"canned", "retrieval"}
        assert len(result.history) == 2 * result.turn - 1  # earlier turns and the bot's replies
    rep = dialogue_eval.report(results, bot.scorer.encoder)
    assert rep["n_turns"] == len(results) and rep["generator_share"] == 0.0
    assert rep["metrics"]["chosen"]["unsafe"] == 0 and rep["metrics"]["chosen"]["empty"] == 0
    assert len(rep["sample"]) == min(20, len(results))
    text = dialogue_eval.markdown(rep)
    assert "| chosen |" in text and "## Sample turns" in text


def test_fitting_data_and_fit(bot: dialogue_eval.Bot) -> None:
    items = selector_fitting.rating_items(bot, lambda _: None)
    sources = {item["source"] for item in items}
    assert sources == {"written", "other", "retrieval", "retrieval-2", "retrieval-3", "backchannel"}
    for item in items:
        item["sensible"] = {"written": 1, "other": 0}.get(item["source"])
    weights = selector_fitting.fit_selector(bot.scorer.encoder, items)
    assert tuple(weights["features"]) == selector.FEATURES
    coef = dict(zip(selector.FEATURES, weights["coef"], strict=True))
    assert coef["rel_msg"] + coef["rel_ctx"] > 0  # relevant replies are the sensible ones
    assert weights["train_accuracy"] > 0.7


def test_the_command_writes_its_report(built_config: ModelConfig, tmp_path: Path) -> None:
    """`banter models eval-dialogue` end to end (without the generator, on two conversations)."""
    from streams.cli import main

    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(built_config.cache_dir)  # the session's built models, where settings look
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BANTER_HOME", str(home))
        assert main(["models", "eval-dialogue", "--no-generator", "--limit", "2", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "eval-dialogue.json").read_text())
    assert report["conversations"] == 2 and report["n_turns"] == len(report["turns"]) > 0
    assert (tmp_path / "eval-dialogue.md").read_text().startswith("# banter eval-dialogue")
