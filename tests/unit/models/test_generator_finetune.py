"""The generator's persona fine-tune (``models.build.generator_finetune``): which tokens the loss
counts, the batching and schedule, and a LoRA adapter trained on a tiny random Llama, merged
by the build and served; the shipped adapter is the default model's."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models import generator, persona
from models.build import generator_conversion, generator_finetune
from models.build.generator_finetune import IGNORE, Recipe, batches, example, learning_rate
from models.config import ModelConfig
from models.store import ArtifactsError
from models.types import Dialogue, Utterance

CONVERSATION = [
    Utterance("user", "my cat knocked my coffee over"),
    Utterance("bot", "Classic cat crime. Was it on purpose?"),
    Utterance("user", "she looked at me first"),
    Utterance("bot", "Premeditated. Frame her mugshot."),
]


@pytest.fixture(scope="module")
def tokenizer(packaged_tokenizer: Any) -> Any:
    return packaged_tokenizer


def test_the_loss_counts_the_bots_turns_and_nothing_else(tokenizer: Any) -> None:
    found = example(tokenizer, CONVERSATION, 768)
    assert found is not None
    ids, labels = found
    assert len(ids) == len(labels)
    counted = tokenizer.decode([i for i, label in zip(ids, labels, strict=True) if label != IGNORE])
    assert counted == "Classic cat crime. Was it on purpose?<|im_end|>Premeditated. Frame her mugshot.<|im_end|>"
    assert all(label in (IGNORE, i) for i, label in zip(ids, labels, strict=True))
    # the sequence is the served prompt of the last turn followed by its answer
    served = tokenizer.apply_chat_template(persona.chat_messages(CONVERSATION[:3]), add_generation_prompt=True)
    served = list(served["input_ids"] if hasattr(served, "keys") else served)
    assert ids[: len(served)] == served


def test_a_long_conversation_keeps_its_latest_turns(tokenizer: Any) -> None:
    whole = example(tokenizer, CONVERSATION, 768)
    assert whole is not None
    cut = example(tokenizer, CONVERSATION, len(whole[0]) - 1)
    assert cut is not None and len(cut[0]) < len(whole[0])
    assert tokenizer.decode([i for i, label in zip(*cut, strict=True) if label != IGNORE]) == (
        "Premeditated. Frame her mugshot.<|im_end|>"
    )
    assert example(tokenizer, CONVERSATION, 20) is None  # not even the last exchange fits


@given(st.lists(st.integers(1, 300), min_size=1, max_size=60), st.integers(300, 2000))
def test_batches_cover_every_conversation_once_within_the_token_budget(lengths: list[int], budget: int) -> None:
    found = batches(lengths, budget, random.Random(0))
    assert sorted(i for batch in found for i in batch) == list(range(len(lengths)))
    for batch in found:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= budget


def test_the_learning_rate_warms_up_then_decays_to_zero() -> None:
    rates = [learning_rate(step, 100, 1e-3, 0.1) for step in range(100)]
    assert rates[0] == pytest.approx(1e-4) and rates[9] == pytest.approx(1e-3)
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))
    assert rates[-1] < 1e-5


def test_an_adapter_trained_on_a_tiny_llama_learns_and_the_build_merges_it(tmp_path: Path, tiny_llama: Any) -> None:
    base = tiny_llama(tmp_path / "tiny-llama")
    plain = ModelConfig(cache_dir=tmp_path / "cache", generator=str(base), generator_max_time_s=30.0)
    base_version = generator.source(plain).base_version()
    adapter = tmp_path / "adapter"
    lines: list[str] = []
    recipe = Recipe(rank=8, alpha=32, dropout=0.0, epochs=40, learning_rate=3e-2, warmup=0.1)
    meta = generator_finetune.train(base, [CONVERSATION], adapter, lines.append, recipe, 1, base_version, "data")
    assert meta["final_loss"] < meta["first_loss"] * 0.7, meta
    assert (adapter / "adapter_config.json").is_file() and (adapter / generator_finetune.ADAPTER_META).is_file()
    assert any("step 40/40" in line for line in lines)

    tuned = ModelConfig(cache_dir=plain.cache_dir, generator=str(base), generator_adapter=str(adapter))
    assert generator.source(tuned).adapter == adapter
    assert generator.version(tuned) != generator.version(plain)
    version = generator_conversion.build(tuned, lines.append)
    assert any("merging the LoRA adapter" in line for line in lines)
    meta_file = generator.model_dir(tuned, version) / generator.META_FILE
    assert json.loads(meta_file.read_text())["adapter"] == str(adapter)
    model = generator.load(tuned)
    assert len(model.predict([Dialogue((Utterance("user", "my cat knocked my coffee over"),))])) == 1


def test_an_adapter_trained_on_another_base_is_refused_with_the_fix(tmp_path: Path, tiny_llama: Any) -> None:
    base = tiny_llama(tmp_path / "tiny-llama")
    adapter = tmp_path / "adapter"
    recipe = Recipe(rank=2, alpha=4, epochs=1)
    generator_finetune.train(base, [CONVERSATION], adapter, lambda _: None, recipe, 1, "another-base", "data")
    config = ModelConfig(cache_dir=tmp_path / "cache", generator=str(base), generator_adapter=str(adapter))
    with pytest.raises(ArtifactsError, match="finetune-generator"):
        generator_conversion.build(config, lambda _: None)


def test_the_default_model_gets_the_shipped_adapter_unless_told_none(tmp_path: Path) -> None:
    assert generator.source(ModelConfig(cache_dir=tmp_path)).adapter == generator.ADAPTER_DIR
    assert generator.source(ModelConfig(cache_dir=tmp_path, generator_adapter="none")).adapter is None
    meta = json.loads((generator.ADAPTER_DIR / generator_finetune.ADAPTER_META).read_text())
    assert meta["base"] == generator.source(ModelConfig(cache_dir=tmp_path)).base_version()
    with pytest.raises(ArtifactsError, match="BANTER_GENERATOR_ADAPTER"):
        generator.source(ModelConfig(cache_dir=tmp_path, generator_adapter=str(tmp_path / "nowhere")))
