"""What a worker that stopped answering is doing, for a test's failure message.

* ``tasks``: SIGUSR1 makes the worker (faust's, on mode's) write every thread's stack and every
  asyncio task's, with their locals, to its log; the failure message gets each task that passes
  through banter's code (or is an agent's actor), with its frames in banter's code and the frame
  it waits in. The whole dump stays in the worker's log.
* ``threads``: py-spy (a dev dependency) dumps the threads from outside; it also works when the
  event loop itself is blocked, which leaves SIGUSR1 unanswered.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.process import WorkerProcess

ROOT = Path(__file__).resolve().parents[2]
TASK = re.compile(r"^  TASK (\S+)")
FRAME = re.compile(r'^  File "([^"]+)", line (\d+), in (\S+)')
WAITS = re.compile(r"wait_for=<([^ >]+)")
MAX_CHARS = 12_000


def dump(worker: WorkerProcess) -> str:
    """Both views, or why there is none."""
    if worker.process is None or not worker.alive:
        return "(none: the worker is gone)"
    return f"worker tasks (SIGUSR1):\n{tasks(worker)}\nworker threads (py-spy):\n{threads(worker)}"


def tasks(worker: WorkerProcess, wait_s: float = 15.0) -> str:
    """The worker's asyncio tasks that pass through banter's code, where they wait."""
    assert worker.process is not None
    start = worker.log_path.stat().st_size
    os.kill(worker.process.pid, signal.SIGUSR1)
    text = _new_output(worker.log_path, start, wait_s)
    if "TASKS" not in text:
        return f"(no task dump within {wait_s:.0f} s: is the event loop blocked? see the threads)"
    return _ours(text.split("TASKS", 1)[1])[-MAX_CHARS:]


def threads(worker: WorkerProcess) -> str:
    """Where each thread of the worker is, from py-spy."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists() or worker.process is None:
        return "(none: py-spy missing)"
    run = subprocess.run([str(spy), "dump", "--pid", str(worker.process.pid)], capture_output=True, text=True)
    return (run.stdout or run.stderr)[-MAX_CHARS:]


def _new_output(log: Path, start: int, wait_s: float) -> str:
    """What the log gained after ``start``, once it stopped growing for a second (or after ``wait_s``)."""
    deadline, size, stable_since = time.monotonic() + wait_s, start, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = log.stat().st_size
        if now != size:
            size, stable_since = now, time.monotonic()
        elif size > start and time.monotonic() - stable_since >= 1.0:
            break
    with log.open("rb") as handle:
        handle.seek(start)
        return handle.read().decode(errors="replace")


def _ours(dumped: str) -> str:
    """Per task: its name, what it waits on, its frames in banter's code and its last frame."""
    out: list[str] = []
    for block in re.split(r"\n(?=  TASK )", dumped):
        lines = block.splitlines()
        name = TASK.match(lines[0]) if lines else None
        if name is None:
            continue
        frames = _frames(lines)
        actor = next((line.strip() for line in lines if "self = <Agent: " in line), "")
        if not any(ours for *_, ours in frames) and not actor:
            continue
        header = next((line for line in lines[1:3] if line.strip().startswith("<Task")), "")
        waits = WAITS.search(header)
        out.append(f"TASK {name.group(1)}{f' (waits on a {waits.group(1)})' if waits else ''} {actor}".rstrip())
        out += [f"  {where}: {code}" for i, (where, code, ours) in enumerate(frames) if ours or i == len(frames) - 1]
    return "\n".join(out) or "(no task passes through banter's code)"


def _frames(lines: list[str]) -> list[tuple[str, str, bool]]:
    """(file:line in function, its source line, whether the file is banter's) for each frame of a task."""
    frames = []
    for i, line in enumerate(lines):
        match = FRAME.match(line)
        if match:
            path, number, function = match.groups()
            code = lines[i + 1].strip() if i + 1 < len(lines) and not FRAME.match(lines[i + 1]) else ""
            ours = path.startswith(str(ROOT)) and "/.venv/" not in path
            frames.append((f"{_short(path)}:{number} in {function}", code, ours))
    return frames


def _short(path: str) -> str:
    return path[len(str(ROOT)) + 1 :] if path.startswith(str(ROOT)) and "/.venv/" not in path else Path(path).name
