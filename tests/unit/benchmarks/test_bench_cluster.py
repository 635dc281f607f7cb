"""Which roles each configuration's workers run."""

from __future__ import annotations

from pathlib import Path

from benchmarks.bench.cluster import (
    GENERATOR,
    NON_GENERATOR_ROLES,
    agent_roles,
    configurations,
    first_error,
    non_generator_roles,
)
from streams.settings import Settings


def test_the_agents_roles_are_all_known() -> None:
    found = agent_roles()
    assert GENERATOR in found
    assert {"context", "router"} <= found


def test_a_new_role_is_added_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "rank.py").write_text('@agent("ranker", topics.turns)\n@timer( "router", 1)\n')
    assert agent_roles(tmp_path) == {"ranker", "router"}
    warnings: list[str] = []
    roles = non_generator_roles({"ranker", "router", GENERATOR}, warnings.append)
    assert roles.split(",") == [*NON_GENERATOR_ROLES, "ranker"]
    assert any("ranker" in w for w in warnings)


def test_split_runs_every_role_exactly_once() -> None:
    split = configurations(lambda line: None)["split"]
    settings = [Settings.from_env({"BANTER_ROLES": spec.roles}) for spec in split]
    for role in agent_roles():
        assert sum(s.runs(role) for s in settings) == 1, role
    assert [spec.own_group for spec in split] == [True, False]  # a generator sharing the group would take turns away


def test_why_a_worker_stopped(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(
        '{"level":"error","msg":"Topic x not found"}\nnot json\n'
        '{"level":"error","msg":"[^-App]: Crashed reason=RuntimeError(\'boom\')"}\n'
    )
    assert first_error(log) == "[^-App]: Crashed reason=RuntimeError('boom')"
    log.write_text('{"level":"info","msg":"hi"}\n{"level":"critical","msg":"bad"}\n')
    assert first_error(log) == "bad"
    assert first_error(tmp_path / "none.log") == "no log"
