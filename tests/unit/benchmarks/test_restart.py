"""The restart benchmark's model of a compacted changelog, and its reading of the worker's log."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

from benchmarks.restart import Log, milestones


def _writes(tail_from: float, writes: list[tuple[str, float]]) -> list[str]:
    sent: list[str] = []

    async def send(value: str) -> None:
        sent.append(value)

    async def run() -> None:
        log = Log(send, tail_from)
        for value, at in writes:
            await log.write(value, at)
        await log.flush()

    asyncio.run(run())
    return sent


def test_compaction_keeps_a_key_s_last_value_before_the_tail_and_every_write_in_it() -> None:
    assert _writes(100.0, [("a", 10), ("b", 20), ("c", 100), ("d", 110)]) == ["b", "c", "d"]
    assert _writes(100.0, [("a", 10), ("b", 20)]) == ["b"]
    assert _writes(100.0, [("c", 100)]) == ["c"]


def test_without_compaction_every_write_is_kept() -> None:
    assert _writes(-math.inf, [("a", 10), ("b", 20), ("c", 100)]) == ["a", "b", "c"]


def test_milestones_are_seconds_from_the_start_to_the_first_matching_line(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    lines = [
        {"ts": 101.5, "msg": "Executing _on_partitions_assigned"},
        {"ts": 103.0, "msg": "[^---Recovery]: Restore complete!"},
        {"ts": 109.0, "msg": "[^---Recovery]: Restore complete!"},
        {"ts": 103.25, "msg": "[^Worker]: Ready"},
    ]
    log.write_text("not json\n" + "\n".join(json.dumps(line) for line in lines) + "\n")
    assert milestones(log, 100.0) == {"partitions assigned": 1.5, "tables recovered": 3.0, "worker ready": 3.25}
