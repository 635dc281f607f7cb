"""STYLE.md's rules that a test can hold: imports flow one way, serving code never
depends on build code, and only the settings module reads the environment."""

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


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, by its full dotted name, relative imports resolved
    (``from a import b`` gives ``a`` and ``a.b``, since ``b`` may be a module)."""
    package = list(path.relative_to(ROOT).parent.parts)
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names |= {module} | {f"{module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package: str) -> None:
    for path in _modules(package):
        ours = _imports(path) & OURS
        assert ours <= ALLOWED[package], f"{path.relative_to(ROOT)} imports {ours - ALLOWED[package]}"


def test_models_know_nothing_of_kafka_or_metrics() -> None:
    for path in _modules("models"):
        assert not _imports(path) & KAFKA_LIBS, f"{path.relative_to(ROOT)} imports Kafka or metrics code"


def test_serving_models_never_import_build_code() -> None:
    build = ROOT / "models" / "build"
    serving = [path for path in _modules("models") if build not in path.parents]
    assert serving, "no serving modules found"
    for path in serving:
        wrong = {name for name in _imported_modules(path) if name == "models.build" or name.startswith("models.build.")}
        assert not wrong, f"{path.relative_to(ROOT)} imports build code: {sorted(wrong)}"


def test_only_settings_reads_the_environment() -> None:
    for package in sorted(OURS):
        for path in _modules(package):
            if path.name == "settings.py" and package == "streams":
                continue
            text = path.read_text()
            reads = "os.environ" in text or "os.getenv" in text
            assert not reads, f"{path.relative_to(ROOT)} reads the environment"


# Who may import the faust app (built at import): agents, the topic and table declarations, and the
# CLI command that runs the worker (inside the function, so the CLI imports without building it).
APP_IMPORTERS = {"streams/topics.py", "streams/tables.py", "streams/commands.py"}


def _importers(
    module: str, packages: tuple[str, ...] = ("schemas", "streams", "agents", "models", "benchmarks")
) -> set[str]:
    found = set()
    for package in packages:
        for path in _modules(package):
            if module in _imported_modules(path):
                found.add(str(path.relative_to(ROOT)))
    return found


def test_only_agents_and_the_declarations_import_the_app() -> None:
    outside = {path for path in _importers("streams.app") if not path.startswith("agents/")}
    assert outside <= APP_IMPORTERS, f"these import the faust app: {sorted(outside - APP_IMPORTERS)}"


def test_the_faust_gap_workaround_is_one_module_wired_in_one_place() -> None:
    """Dropping streams/gaps.py once faust is fixed edits streams/app.py alone."""
    assert _importers("streams.gaps") == {"streams/app.py"}


def test_agents_never_import_each_other() -> None:
    for path in _modules("agents"):
        assert not {name for name in _imported_modules(path) if name.startswith("agents")}, path.name
