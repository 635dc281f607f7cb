"""Watching the workers during a phase: resident memory and event-loop lag, maxima kept.

Memory is the RSS summed over a worker's process group (psutil when installed,
else ``/proc/<pid>/status`` VmRSS); loop lag is the worker's own gauge
``banter_event_loop_lag_seconds`` scraped from its ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

LOOP_LAG = "banter_event_loop_lag_seconds"
CONSUMER_LAG = "banter_consumer_lag_messages"
LAG_REFRESH_S = 5.0  # the workers sample consumer lag this often
SAMPLE_EVERY_S = 1.0


@dataclass(frozen=True)
class Probe:
    """Where to look at one worker: its process group id and its web port."""

    pgid: int
    web_port: int
    web_host: str = "127.0.0.1"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}/metrics"


def metric_values(text: str, name: str) -> list[float]:
    """Every value of metric ``name`` (any labels) in Prometheus text format, NaN left out."""
    values = []
    for line in text.splitlines():
        if line.startswith("#") or not (line.startswith(name + " ") or line.startswith(name + "{")):
            continue
        with contextlib.suppress(ValueError, IndexError):
            values.append(float(line.rsplit(maxsplit=1)[-1]))
    return [v for v in values if not math.isnan(v)]


def metric_max(text: str, name: str) -> float | None:
    """The largest value of metric ``name``; None if absent."""
    values = metric_values(text, name)
    return max(values) if values else None


def backlog(probes: Sequence[Probe]) -> int | None:
    """Records of banter's topics the workers have not read yet, all workers and topics; None if unknown."""
    pages = [_scrape(probe.metrics_url) for probe in probes]
    if not all(pages):
        return None
    return int(sum(sum(metric_values(page, CONSUMER_LAG)) for page in pages))


def settle(probes: Sequence[Probe], timeout_s: float) -> int | None:
    """Wait until the workers have read everything (as of a lag sample taken after now); the backlog left."""
    began = time.monotonic()
    time.sleep(LAG_REFRESH_S + 0.5)
    left = backlog(probes)
    while left and time.monotonic() - began < timeout_s:
        time.sleep(1.0)
        left = backlog(probes)
    return left


def group_rss_bytes(pgid: int, proc: Path = Path("/proc")) -> int:
    """Resident memory of every process in group ``pgid`` (a worker and its children), in bytes;
    counted by group, so it holds also when the group's leader has exited."""
    if proc.is_dir():
        return _proc_group_rss(pgid, proc)
    try:
        import psutil
    except ImportError:
        return 0
    total = 0
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                total += int(process.memory_info().rss)
        except (psutil.Error, OSError):
            continue
    return total


def _proc_group_rss(pgid: int, proc: Path) -> int:
    total = 0
    for entry in proc.iterdir():
        if entry.name.isdigit() and _pgid_of(int(entry.name), proc) == pgid:
            total += _vm_rss(entry / "status")
    return total


def _pgid_of(pid: int, proc: Path) -> int | None:
    """The process group in /proc/<pid>/stat (field 5, counted after the command's parentheses)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[2]) if len(fields) > 2 else None


def _vm_rss(status: Path) -> int:
    try:
        lines = status.read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _scrape(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


class Sampler:
    """Samples every probe each second while in use; keeps the maxima."""

    def __init__(self, probes: Sequence[Probe]) -> None:
        self.probes = list(probes)
        self.rss_max_bytes = 0
        self.loop_lag_max_s: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.sample)  # one last look, after the drain

    async def _run(self) -> None:
        while True:
            await asyncio.to_thread(self.sample)
            await asyncio.sleep(SAMPLE_EVERY_S)

    def sample(self) -> None:
        """One look at every worker."""
        for probe in self.probes:
            self.rss_max_bytes = max(self.rss_max_bytes, group_rss_bytes(probe.pgid))
            lag = metric_max(_scrape(probe.metrics_url), LOOP_LAG)
            if lag is not None:
                self.loop_lag_max_s = lag if self.loop_lag_max_s is None else max(self.loop_lag_max_s, lag)
