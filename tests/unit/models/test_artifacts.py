"""Artifacts: readiness check, errors naming the fix, content-hash versions, build_all
skipping what is current, the registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import artifacts, generator, registry
from models.build import artifacts as build
from models.build import clinc, intent_eval
from models.config import ModelConfig


def test_empty_cache_is_reported_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator, "check", lambda config: [])
    problems = artifacts.check(ModelConfig(cache_dir=tmp_path))
    assert len(problems) == 3
    assert all("banter models build" in p for p in problems)


@pytest.mark.parametrize("name", ["intent", "responder"])
def test_loading_without_artifacts_raises(tmp_path: Path, name: str) -> None:
    with pytest.raises(artifacts.ArtifactsError, match="banter models build"):
        registry.load(name, ModelConfig(cache_dir=tmp_path))


def test_unknown_model_name(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        registry.load("oracle", ModelConfig(cache_dir=tmp_path))


def test_versions_follow_settings_that_change_outputs(tmp_path: Path) -> None:
    fp32 = artifacts.expected_versions(ModelConfig(cache_dir=tmp_path))
    int8 = artifacts.expected_versions(ModelConfig(cache_dir=tmp_path, precision="int8"))
    assert fp32["encoder"] == int8["encoder"]
    assert fp32["intent"] != int8["intent"]
    assert fp32["responder"] != int8["responder"]
    assert fp32 == artifacts.expected_versions(ModelConfig(cache_dir=tmp_path, ort_threads=2))


@pytest.mark.slow
def test_build_all_skips_current_artifacts(built_config: ModelConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator, "check", lambda config: [])
    notes: list[str] = []
    manifest = build.build_all(built_config, notes.append, with_generator=False)
    assert manifest == artifacts.expected_versions(built_config)
    assert artifacts.check(built_config) == []
    assert any("generator" in n and "skipped" in n for n in notes)
    assert not any(n.startswith(("encoder:", "intent:", "responder:")) for n in notes)
    assert artifacts.read_manifest(built_config) == manifest


@pytest.mark.slow
def test_models_carry_name_and_version(built_config: ModelConfig) -> None:
    versions = artifacts.expected_versions(built_config)
    for name in ("intent", "responder"):
        model = registry.load(name, built_config)
        assert (model.name, model.version) == (name, versions[name])


@pytest.mark.slow
def test_evaluation_report_on_clinc_format(built_config: ModelConfig, tmp_path: Path) -> None:
    from models import dataset

    split = dataset.project_split()
    keep = {"greeting", "weather", "music", "sadness", "love_declaration", "pets"}
    small = dataset.Split(
        train=[e for e in split.train if e[1] in keep],
        test=[e for e in split.test if e[1] in keep],
        oos_train=split.oos_train[:60],
        oos_test=split.oos_test,
    )
    path = tmp_path / "clinc.json"
    clinc.write_clinc(small, path)
    report = intent_eval.run(path, built_config, lambda _: None)
    for needle in (
        "in-scope accuracy",
        "out-of-scope recall",
        "out-of-scope precision",
        "AUROC",
        "threshold",
        "batch 1",
        "batch 32",
    ):
        assert needle in report
