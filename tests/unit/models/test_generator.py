"""The generator: the packaged SmolLM2 chat model through CTranslate2 (built by `make models`),
its persona prompt, caps and tidying, and the generic Hugging Face folder path (a tiny
random Llama built here, converted and served the same way)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from models import generator, persona
from models.build import generator_conversion
from models.config import ModelConfig
from models.generator import ChatGenerator, tidy
from models.store import ArtifactsError
from models.types import Dialogue, Utterance
from streams.settings import Settings

MESSAGES = [
    "i'm so tired today, work was brutal",
    "what should i cook tonight?",
    "just got a new job!!",
    "my sister is getting married next week",
]


def ask(text: str, *earlier: Utterance) -> Dialogue:
    return Dialogue((*earlier, Utterance("user", text)))


@pytest.fixture(scope="module")
def packaged() -> ChatGenerator:
    """The default generator from the cache `make models` (banter models build) fills."""
    config = ModelConfig(cache_dir=Settings.from_env().home / "models", generator_max_time_s=60.0)
    return generator.load(config)


def test_the_serving_tokenizer_matches_transformers_without_importing_it(
    packaged: ChatGenerator, packaged_tokenizer: Any
) -> None:
    full = packaged_tokenizer
    chats = [
        persona.chat_messages([]),
        [{"role": "user", "content": "hey what's up 🙂 naïve café\nnew line"}],
        [
            {"role": "system", "content": "be sassy"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "<|im_end|> a tricky one"},
        ],
    ]
    light = packaged.tokenizer
    for messages in chats:
        for prompt in (True, False):
            ids = light.apply_chat_template(messages, add_generation_prompt=prompt)
            expected = full.apply_chat_template(messages, add_generation_prompt=prompt, tokenize=True)
            assert ids == list(expected["input_ids"] if hasattr(expected, "keys") else expected)
            assert light.decode(ids) == full.decode(ids, skip_special_tokens=True)
            assert light.convert_ids_to_tokens(ids) == full.convert_ids_to_tokens(ids)
    assert light.eos_token == full.eos_token and light.get_vocab() == full.get_vocab()


def test_the_default_source_is_the_packaged_gguf() -> None:
    src = generator.source(ModelConfig(cache_dir=Path("/nonexistent")))
    assert src.gguf_file == generator.GGUF_FILE and src.path is not None and (src.path / src.gguf_file).is_file()


def test_a_missing_local_model_folder_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ArtifactsError, match="BANTER_GENERATOR"):
        generator.source(ModelConfig(cache_dir=tmp_path, generator=str(tmp_path / "nowhere")))
    assert generator.check(ModelConfig(cache_dir=tmp_path, generator=str(tmp_path / "nowhere")))


def test_unbuilt_artifacts_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ArtifactsError, match="banter models build"):
        generator.load(ModelConfig(cache_dir=tmp_path))


@pytest.mark.parametrize(
    ("text", "complete", "expected"),
    [
        ("Oh  wow. That is big!  Tell me more? And also", True, "Oh wow. That is big!"),
        ("Nice one! Where did you go and", False, "Nice one!"),
        ("where did you go and", False, "where did you go and"),
        ("Sounds fun.", True, "Sounds fun."),
    ],
)
def test_tidy_keeps_two_complete_sentences(text: str, complete: bool, expected: str) -> None:
    assert tidy(text, complete=complete) == expected


def test_replies_are_short_in_character_and_finished(packaged: ChatGenerator) -> None:
    replies = packaged.predict([ask(m) for m in MESSAGES])
    assert len(replies) == len(MESSAGES)
    for reply in replies:
        assert reply.text.strip(), "never empty"
        assert not any(phrase.lower() in reply.text.lower() for phrase in persona.SUPPRESSED), reply.text
        assert len(reply.text.split()) <= 60
        assert reply.score < 0.0  # a mean log-probability
        assert reply.quality is None  # no selector attached here


def test_a_reply_is_a_function_of_its_dialogue(packaged: ChatGenerator) -> None:
    dialogue = ask("what about pizza?", Utterance("user", "i'm hungry"), Utterance("bot", "Feed the beast! What?"))
    assert packaged.predict([dialogue]) == packaged.predict([dialogue])


def test_a_reply_never_depends_on_its_batch_mates(packaged: ChatGenerator) -> None:
    batch = [ask(m) for m in MESSAGES] + [
        ask(
            "ok",
            Utterance("user", "my cat knocked over a plant"),
            Utterance("bot", "Chaos gremlin! Is the plant alive?"),
        )
    ]
    together = packaged.predict(batch)
    assert together == [packaged.predict([dialogue])[0] for dialogue in batch]


def test_history_reaches_the_prompt_and_is_cut_to_the_window(packaged: ChatGenerator) -> None:
    short = packaged.prompt_tokens(ask("and then?", Utterance("user", "my cat ate my homework")), 32)
    assert "Ġcat" in short
    long_history = tuple(Utterance("user" if i % 2 == 0 else "bot", "blah " * 400) for i in range(12))
    cut = packaged.prompt_tokens(ask("and then?", *long_history), 32)
    assert len(cut) + len(packaged._static) + 32 <= packaged._window


def test_caps_stop_generation(packaged: ChatGenerator) -> None:
    capped = packaged.predict([Dialogue((Utterance("user", "tell me a long story"),), options={"max_new_tokens": 3})])
    assert capped[0].truncated and len(capped[0].text.split()) <= 3
    no_time = generator.load(dataclasses.replace(packaged._config, generator_max_time_s=0.0))
    late = no_time.predict([ask(m) for m in MESSAGES])
    assert all(reply.truncated and len(reply.text.split()) <= 2 for reply in late)


def test_any_hugging_face_causal_lm_folder_builds_and_serves(tmp_path: Path, tiny_llama: Any) -> None:
    """A tiny random Llama with the packaged tokenizer stands in for "any HF model id or folder"."""
    folder = tiny_llama(tmp_path / "tiny-llama")
    settings = ModelConfig(cache_dir=tmp_path / "cache", generator=str(folder), generator_max_time_s=30.0)
    messages: list[str] = []
    version = generator_conversion.build(settings, messages.append)
    assert messages and version == generator.version(settings)
    assert generator.check(settings) == []
    model = generator.load(settings)
    replies = model.predict([ask("hello there")])
    assert len(replies) == 1 and model.version == version
    assert generator_conversion.build(settings, messages.append) == version  # built once
