"""Message and reply text stay out of logs (unless BANTER_LOG_TEXT allows it) and out of metric labels."""

from __future__ import annotations

import ast
import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import DeadLetter, Message
from streams.inputs import Inputs
from streams.logs import JsonFormatter
from streams.metrics import GatewayMetrics, Metrics

ROOT = Path(__file__).resolve().parents[3]
LOG_METHODS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
TEXT_NAMES = {"text", "texts", "reply_text", "message_text", "body", "history", "candidates", "turns"}
LOW_CARDINALITY_LABELS = {
    "agent",
    "model",
    "version",
    "status",
    "stage",
    "source",
    "reason",
    "topic",
    "intent",
    "error",
    "found_by",
    "route",
    "outcome",
}


def _log_calls(tree: ast.AST) -> list[tuple[ast.Call, bool]]:
    """Every ``log.<level>(...)`` call, and whether an ``if`` that tests ``log_text`` guards it."""
    found: list[tuple[ast.Call, bool]] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.If) and "log_text" in ast.unparse(node.test):
            for statement in node.body:
                visit(statement, True)
            for statement in node.orelse:
                visit(statement, guarded)
            return
        if isinstance(node, ast.Call) and _is_log_call(node):
            found.append((node, guarded))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


def _is_log_call(call: ast.Call) -> bool:
    func = call.func
    if not (isinstance(func, ast.Attribute) and func.attr in LOG_METHODS):
        return False
    owner = func.value
    return (isinstance(owner, ast.Name) and owner.id in {"log", "logger", "logging"}) or (
        isinstance(owner, ast.Call) and ast.unparse(owner.func).endswith("getLogger")
    )


def _text_in(call: ast.Call) -> list[str]:
    """The parts of a log call that read text: a ``.text``-like attribute or name, or such an ``extra`` key."""
    parts = [*call.args, *(kw.value for kw in call.keywords)]
    hits = []
    for node in (n for part in parts for n in ast.walk(part)):
        if isinstance(node, ast.Attribute) and node.attr in TEXT_NAMES:
            hits.append(ast.unparse(node))
        elif isinstance(node, ast.Name) and node.id in TEXT_NAMES:
            hits.append(node.id)
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            hits.extend(f"extra key {key!r}" for key in keys if key in TEXT_NAMES)
    return hits


def _sources() -> list[Path]:
    """The code a worker or gateway runs; ``models/build`` (offline builds and reports) never sees a user."""
    paths = (path for folder in ("streams", "agents", "models") for path in (ROOT / folder).rglob("*.py"))
    return sorted(path for path in paths if "build" not in path.relative_to(ROOT).parts)


def test_no_log_call_reads_message_or_reply_text_unless_log_text_allows_it() -> None:
    leaks = [
        f"{path.relative_to(ROOT)}:{call.lineno}: {', '.join(hits)}"
        for path in _sources()
        for call, guarded in _log_calls(ast.parse(path.read_text(), str(path)))
        if not guarded and (hits := _text_in(call))
    ]
    assert not leaks, "log calls that would carry text (guard them with `if settings.log_text:`):\n" + "\n".join(leaks)


def test_the_scan_finds_a_leak_and_accepts_a_guarded_one() -> None:
    leak = ast.parse("log.info('reply', extra={'text': reply.text})")
    guarded = ast.parse("if settings.log_text:\n    log.info('reply', extra={'text': reply.text})")
    ((call, is_guarded),) = _log_calls(leak)
    assert _text_in(call) and not is_guarded
    assert [g for _, g in _log_calls(guarded)] == [True]


@pytest.mark.parametrize("metrics_class", [Metrics, GatewayMetrics])
def test_metric_labels_are_low_cardinality_names_never_text_or_ids(metrics_class: type) -> None:
    registry = CollectorRegistry()
    metrics_class(registry)
    labels = {
        label
        for collector in registry._collector_to_names  # every metric registered
        for label in getattr(collector, "_labelnames", ())
    }
    assert labels and labels <= LOW_CARDINALITY_LABELS, labels - LOW_CARDINALITY_LABELS


SECRET = "my number is zebra-quartz-7781"


@dataclass(frozen=True)
class Origin:
    topic: str = "t.messages"
    partition: int = 0
    offset: int = 5
    timestamp: float = 0.0


@dataclass(frozen=True)
class Record:
    """An input record as ``streams.inputs`` takes it."""

    value: bytes
    key: bytes = b"c-1"
    message: Origin = Origin()


def _record(value: bytes) -> Record:
    return Record(value)


def test_dead_letters_and_handler_errors_log_no_text(caplog: pytest.LogCaptureFixture) -> None:
    async def send(key: bytes | None, dead: DeadLetter) -> None:
        return None

    async def boom() -> None:
        raise KeyError("pending")

    inputs = Inputs(send, Metrics(CollectorRegistry()))
    message = orjson.dumps({"message_id": "m", "conversation_id": "c", "text": SECRET, "schema_version": 99})
    with caplog.at_level(logging.DEBUG):
        assert asyncio.run(inputs.decode(_record(message), Message, "context")) is None
        assert asyncio.run(inputs.guarded(_record(orjson.dumps({"text": SECRET})), "router", boom)) is None
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert len(lines) >= 2 and not [line for line in lines if "zebra" in line]
