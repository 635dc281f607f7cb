"""STYLE.md's rules that a test can hold: imports flow one way, and only the
settings module reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"schemas", "streams", "agents", "models"}
ALLOWED = {
    "schemas": {"schemas"},
    "models": {"models"},
    "streams": {"schemas", "models", "streams"},
    "agents": {"schemas", "models", "streams"},
}
KAFKA_LIBS = {"faust", "aiokafka", "mode", "prometheus_client"}


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package: str) -> None:
    for path in _modules(package):
        ours = _imports(path) & OURS
        assert ours <= ALLOWED[package], f"{path.relative_to(ROOT)} imports {ours - ALLOWED[package]}"


def test_models_know_nothing_of_kafka_or_metrics() -> None:
    for path in _modules("models"):
        assert not _imports(path) & KAFKA_LIBS, f"{path.relative_to(ROOT)} imports Kafka or metrics code"


def test_only_settings_reads_the_environment() -> None:
    for package in sorted(OURS):
        for path in _modules(package):
            if path.name == "settings.py" and package == "streams":
                continue
            text = path.read_text()
            reads = "os.environ" in text or "os.getenv" in text
            assert not reads, f"{path.relative_to(ROOT)} reads the environment"
