"""The generator: a tiny model trained in seconds, then history-conditioned, seeded, capped
sampling, loading through the generic Hugging Face id/path code path, perplexity."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from models import generator
from models.artifacts import ArtifactsError
from models.config import ModelConfig
from models.generator import Generator
from models.generator_training import TrainConfig, current_version, evaluate_perplexity
from models.types import Candidate, Dialogue, Utterance

TINY = TrainConfig(
    n_dialogues=400,
    vocab_size=500,
    n_layer=2,
    n_head=2,
    n_embd=64,
    n_positions=128,
    steps=60,
    batch_size=8,
    learning_rate=3e-3,
    warmup_steps=5,
)
ASKED = Utterance("user", "what should I do tonight?")
GUITAR = (
    Utterance("user", "I've been getting into playing guitar lately"),
    Utterance("bot", "Ooh, playing guitar. Very main character of you. How's it going?"),
    ASKED,
)
CRUSH = (
    Utterance("user", "I think I have a crush on Riley"),
    Utterance("bot", "Ooh, Riley! Okay, spill. How did this happen?"),
    ASKED,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelConfig, dict[str, Any]]:
    config = ModelConfig(cache_dir=tmp_path_factory.mktemp("models"))
    messages: list[str] = []
    metrics = generator.train(config, messages.append, train_config=TINY)
    assert messages, "training reports progress"
    return config, metrics


@pytest.fixture(scope="module")
def model(trained: tuple[ModelConfig, dict[str, Any]]) -> Generator:
    config, _ = trained
    return generator.load(config, TINY)


def with_config(model: Generator, **changes: Any) -> Generator:
    config = ModelConfig(cache_dir=Path("unused"), **changes)
    return Generator(model.model, model.tokenizer, model.version, config)


def test_training_reports_held_out_perplexity(trained: tuple[ModelConfig, dict[str, Any]]) -> None:
    _, metrics = trained
    assert metrics["version"] == current_version(TINY)
    assert 1.0 < metrics["heldout_perplexity"] < TINY.vocab_size / 4, "far below a uniform guess"
    assert metrics["exchanges"] >= 1000
    assert metrics["steps_done"] == TINY.steps


def test_saved_folder_is_a_hugging_face_checkpoint(trained: tuple[ModelConfig, Any]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(trained[1]["path"])
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (path / name).is_file(), name
    tokenizer = AutoTokenizer.from_pretrained(path)
    decoded = tokenizer.decode(tokenizer.encode("hey, what's up?"))
    assert isinstance(decoded, str) and decoded.strip() == "hey, what's up?"
    assert AutoModelForCausalLM.from_pretrained(path).config.n_embd == TINY.n_embd


def test_build_skips_a_current_version(trained: tuple[ModelConfig, dict[str, Any]]) -> None:
    config, metrics = trained
    messages: list[str] = []
    assert generator.build(config, messages.append, TINY) == metrics["version"]
    assert any("already built" in m for m in messages)
    assert generator.check(config, TINY) == []


def test_missing_checkpoint_is_reported_and_refused(tmp_path: Path) -> None:
    config = ModelConfig(cache_dir=tmp_path)
    problems = generator.check(config, TINY)
    assert problems and "banter models build" in problems[0]
    with pytest.raises(ArtifactsError, match="banter models build"):
        generator.load(config, TINY)


def test_missing_local_folder_is_reported(tmp_path: Path) -> None:
    config = ModelConfig(cache_dir=tmp_path, generator=str(tmp_path / "nowhere"))
    assert generator.check(config) != []


def test_loads_any_local_hugging_face_folder_by_path(trained: tuple[ModelConfig, Any]) -> None:
    config, metrics = trained
    by_path = generator.load(ModelConfig(cache_dir=config.cache_dir, generator=metrics["path"]))
    assert by_path.name == "generator"
    assert len(by_path.version) == 12 and by_path.version != metrics["version"]
    dialogue = Dialogue(history=GUITAR, seed=5)
    default = generator.load(config, TINY)
    assert by_path.predict([dialogue]) == default.predict([dialogue])


def test_predict_returns_one_candidate_per_dialogue(model: Generator) -> None:
    batch = [Dialogue(history=GUITAR, seed=1), Dialogue(history=(), seed=2)]
    out = model.predict(batch)
    assert len(out) == 2 and all(isinstance(c, Candidate) for c in out)
    assert all(math.isfinite(c.score) and c.score <= 0.0 for c in out)
    assert all(c.text == c.text.strip() and "<|endoftext|>" not in c.text for c in out)


def test_same_dialogue_and_seed_give_the_same_text_whatever_the_batch(model: Generator) -> None:
    dialogue = Dialogue(history=GUITAR, seed=11)
    alone = model.predict([dialogue])[0]
    batched = model.predict([Dialogue(history=CRUSH, seed=3), dialogue, dialogue])
    assert batched[1] == alone and batched[2] == alone


def test_seed_changes_the_sample(model: Generator) -> None:
    texts = {model.predict([Dialogue(history=GUITAR, seed=s)])[0].text for s in range(6)}
    assert len(texts) >= 3


def test_output_depends_on_the_history(model: Generator) -> None:
    differs = [
        model.predict([Dialogue(history=GUITAR, seed=s)])[0].text
        != model.predict([Dialogue(history=CRUSH, seed=s)])[0].text
        for s in range(8)
    ]
    assert sum(differs) >= 6, "the same last turn after different histories"


def test_next_token_distribution_depends_on_earlier_turns(model: Generator) -> None:
    def next_logprobs(history: tuple[Utterance, ...]) -> torch.Tensor:
        ids = model.prompt_ids(history, 8)
        with torch.inference_mode():
            return torch.log_softmax(model.model(input_ids=torch.tensor([ids])).logits[0, -1], -1)

    assert float((next_logprobs(GUITAR) - next_logprobs(CRUSH)).abs().max()) > 0.05


def test_prompt_is_the_latest_turns_each_ended_by_eos(model: Generator) -> None:
    two = with_config(model, generator_history_turns=2)
    eos = model.tokenizer.eos_token_id
    encode = model.tokenizer.encode
    expected = [*encode(GUITAR[1].text), eos, *encode(GUITAR[2].text), eos]
    assert two.prompt_ids(GUITAR, 8) == expected


def test_long_histories_are_cut_to_the_context_window(model: Generator) -> None:
    chatter = tuple(
        Utterance("user" if i % 2 == 0 else "bot", "blah " * 40) for i in range(30)
    )
    unlimited = with_config(model, generator_history_turns=30)
    assert len(unlimited.prompt_ids(chatter, 16)) <= TINY.n_positions - 16
    assert isinstance(unlimited.predict([Dialogue(history=chatter)])[0], Candidate)


def test_new_token_cap_from_config_and_per_dialogue(model: Generator) -> None:
    hot = with_config(model, generator_max_new_tokens=5, generator_temperature=2.0,
                      generator_top_k=0, generator_max_time_s=30.0)
    for seed in range(5):
        tokens, logprobs = hot.sample_tokens(Dialogue(history=GUITAR, seed=seed), math.inf)
        assert len(tokens) <= 5 and len(logprobs) >= 1
        capped = Dialogue(history=GUITAR, seed=seed, options={"max_new_tokens": 2})
        assert len(hot.sample_tokens(capped, math.inf)[0]) <= 2
    nothing = Dialogue(history=GUITAR, options={"max_new_tokens": 0})
    assert hot.predict([nothing]) == [Candidate(text="", score=0.0)]


def test_time_cap_stops_sampling_but_never_drops_a_reply(model: Generator) -> None:
    hurried = with_config(model, generator_max_time_s=0.0, generator_max_new_tokens=30)
    batch = [Dialogue(history=GUITAR, seed=s) for s in range(3)]
    out = hurried.predict(batch)
    assert len(out) == 3 and all(isinstance(c, Candidate) for c in out)
    assert all(c == Candidate(text="", score=0.0) for c in out)
    unhurried = with_config(model, generator_max_time_s=60.0)
    assert any(c.text for c in unhurried.predict(batch))


def test_perplexity_of_held_out_dialogues(model: Generator) -> None:
    from models.generator_training import load_corpus

    heldout = load_corpus(TINY.n_dialogues, TINY.corpus_seed).heldout
    scores = evaluate_perplexity(model.model, model.tokenizer, heldout[:10])
    assert set(scores) == {"all_perplexity", "reply_perplexity"}
    assert all(1.0 < v < TINY.vocab_size for v in scores.values())
    assert model.perplexity(heldout[:10]) == scores


def test_training_threads_are_measured_not_assumed() -> None:
    from models.generator_training import pick_threads

    assert [pick_threads(s, 2, {}) for s in (1, 6, 7, 12)] == [2, 2, 1, 1]
    busy = {2: [9.0, 5.0, 5.0], 1: [9.0, 1.0, 1.2]}
    idle = {2: [9.0, 1.0, 1.0], 1: [9.0, 2.0, 2.1]}
    assert pick_threads(13, 2, busy) == 1
    assert pick_threads(13, 2, idle) == 2
    assert pick_threads(13, 1, {}) == 1
