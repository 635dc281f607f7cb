"""Session fixtures for model tests: the encoder export, intent head and response bank
are built once per session into a temporary cache (the generator is not built here)."""

from __future__ import annotations

from pathlib import Path

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
