"""Session fixtures for model tests: the encoder export, intent head and response bank
are built once per session into a temporary cache (the generator is not built here)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from models import artifacts, registry
from models.build import artifacts as build
from models.config import ModelConfig


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("banter-models")


@pytest.fixture(scope="session")
def encoder_config(model_cache: Path) -> ModelConfig:
    """A config whose encoder export (fp32 and int8) is built."""
    config = ModelConfig(cache_dir=model_cache)
    version = artifacts.encoder_version(config)
    if not artifacts.is_built(config, "encoder", version):
        build.build_encoder(config, version, lambda _: None)
    return config


@pytest.fixture(scope="session")
def built_config(encoder_config: ModelConfig) -> ModelConfig:
    """A config whose encoder, intent head and response bank are all built."""
    wanted = artifacts.expected_versions(encoder_config)
    enc = build.load_encoder(encoder_config)
    if not artifacts.is_built(encoder_config, "intent", wanted["intent"]):
        build.build_intent(encoder_config, wanted["intent"], enc, lambda _: None)
    if not artifacts.is_built(encoder_config, "responder", wanted["responder"]):
        build.build_responder(encoder_config, wanted["responder"], enc, lambda _: None)
    return encoder_config


@pytest.fixture(scope="session")
def intent_model(built_config: ModelConfig) -> object:
    return registry.load("intent", built_config)


@pytest.fixture(scope="session")
def responder_model(built_config: ModelConfig) -> object:
    return registry.load("responder", built_config)


@pytest.fixture(scope="session")
def packaged_tokenizer() -> Any:
    """The default generator's tokenizer as transformers loads it, from the cache `make models` fills."""
    from transformers import AutoTokenizer

    from models import generator
    from streams.settings import Settings

    config = ModelConfig(cache_dir=Settings.from_env().home / "models")
    return AutoTokenizer.from_pretrained(str(generator.model_dir(config, generator.version(config)) / generator.HF_DIR))


@pytest.fixture(scope="session")
def tiny_llama(packaged_tokenizer: Any) -> Callable[[Path], Path]:
    """Writes a tiny random Llama with the packaged tokenizer into a folder: "any Hugging Face
    causal LM" for the build and serving paths. Its weights are far from zero, so that its
    logits are far from uniform and a small adapter moves them."""
    from transformers import LlamaConfig, LlamaForCausalLM

    def write(folder: Path) -> Path:
        config = LlamaConfig(
            vocab_size=len(packaged_tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=packaged_tokenizer.bos_token_id,
            eos_token_id=packaged_tokenizer.eos_token_id,
            initializer_range=0.3,
        )
        LlamaForCausalLM(config).save_pretrained(folder)
        packaged_tokenizer.save_pretrained(folder)
        return folder

    return write
