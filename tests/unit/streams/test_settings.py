"""Settings come from BANTER_* variables only, typed, with secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Settings


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.budget_ms == 1000.0
    assert settings.partitions == 8
    assert settings.uses_local_broker
    assert settings.bootstrap == "127.0.0.1:19092"


def test_values_are_typed() -> None:
    settings = Settings.from_env(
        {"BANTER_BUDGET_MS": "250", "BANTER_PARTITIONS": "3", "BANTER_LOG_TEXT": "yes", "BANTER_HOME": "/tmp/b"}
    )
    assert (settings.budget_ms, settings.partitions, settings.log_text) == (250.0, 3, True)
    assert settings.home == Path("/tmp/b")


def test_per_platform_budget() -> None:
    settings = Settings.from_env({"BANTER_PLATFORM_BUDGETS_MS": "web=800, messenger=1500"})
    assert settings.budget_for("web") == 800.0
    assert settings.budget_for("messenger") == 1500.0
    assert settings.budget_for("app") == 1000.0


def test_password_never_shows() -> None:
    settings = Settings.from_env({"BANTER_KAFKA_PASSWORD": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings.describe())
    assert settings.kafka_password.reveal() == "hunter2"


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(ValueError, match="budget_ms"):
        Settings.from_env({"BANTER_BUDGET_MS": "soon"})


def test_roles() -> None:
    settings = Settings.from_env({"BANTER_ROLES": "generator, router"})
    assert settings.runs("generator") and settings.runs("router")
    assert not settings.runs("intent")


def test_kafka_security_settings_and_their_secrets() -> None:
    settings = Settings.from_env(
        {
            "BANTER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "BANTER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "BANTER_KAFKA_SSL_CAFILE": "/etc/ca.pem",
            "BANTER_KAFKA_SSL_KEY_PASSWORD": "keypass",
        }
    )
    assert (settings.kafka_security_protocol, settings.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-256")
    assert settings.kafka_ssl_cafile == "/etc/ca.pem"
    assert "keypass" not in repr(settings) and "keypass" not in str(settings.describe())
