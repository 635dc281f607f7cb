"""The broker and the worker configurations a benchmark runs against.

Each deployment gets fresh topics (a new prefix), its own app id (consumer
group) and web ports, so no phase sees another configuration's records.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.bench.monitor import Probe
from streams.broker import LocalKafka, port_open
from streams.client import answers_200, connected
from streams.kafka import ensure_topics
from streams.process import ROOT, WorkerProcess
from streams.settings import Settings

Progress = Callable[[str], None]
GENERATOR = "generator"
# Every role but the generator, for the worker beside a generator-only one; names agents/ lacks are harmless
# (`intent` and `responder` are the understand step's older names). Edit here when agents/ gains a role:
# one found in agents/ but missing here is added, with a warning.
NON_GENERATOR_ROLES = ("context", "intent", "responder", "understand", "router", "analytics")
PER_WORKER = ("BANTER_TOPIC_PREFIX", "BANTER_APP_ID", "BANTER_WEB_PORT", "BANTER_ROLES")
ROLE_CALL = re.compile(r"""@(?:agent|timer)\(\s*["']([a-z_]+)["']""")


def agent_roles(agents_dir: Path = ROOT / "agents") -> set[str]:
    """Role names the agents register under (``@agent("name", ...)``, ``@timer("name", ...)``), from their source."""
    return {m for path in agents_dir.glob("*.py") for m in ROLE_CALL.findall(path.read_text())}


def non_generator_roles(found: set[str], warn: Progress) -> str:
    """NON_GENERATOR_ROLES, plus any role of agents/ it misses, as BANTER_ROLES."""
    missing = sorted(found - set(NON_GENERATOR_ROLES) - {GENERATOR})
    if missing:
        warn(f"roles {', '.join(missing)} found in agents/ but not in NON_GENERATOR_ROLES: added")
    return ",".join((*NON_GENERATOR_ROLES, *missing))


@dataclass(frozen=True)
class WorkerSpec:
    """One worker of a configuration: its BANTER_ROLES, and a consumer group of its own or not."""

    roles: str
    own_group: bool = False

    def describe(self) -> str:
        return self.roles + (" (own group)" if self.own_group else "")


def configurations(warn: Progress) -> dict[str, tuple[WorkerSpec, ...]]:
    """Each configuration's workers.

    The generator-only worker has a consumer group of its own: within one group
    faust spreads every topic's partitions over all workers, whatever agents
    they run, so a generator worker sharing the group would take half of
    ``banter.turns`` away from the understand step (and the other half from
    the generator).
    """
    rest = non_generator_roles(agent_roles(), warn)
    return {
        "one": (WorkerSpec("all"),),
        "two": (WorkerSpec("all"), WorkerSpec("all")),
        "split": (WorkerSpec(GENERATOR, own_group=True), WorkerSpec(rest)),
    }


@contextmanager
def broker(environ: dict[str, str], port: int, progress: Progress, keep: bool = False) -> Iterator[dict[str, str]]:
    """The environment workers run with; banter's local broker on ``port`` unless one is configured."""
    env = {k: v for k, v in environ.items() if k not in PER_WORKER}
    if env.get("BANTER_KAFKA_BOOTSTRAP"):
        yield env
        return
    settings = Settings.from_env({**env, "BANTER_LOCAL_KAFKA_PORT": str(port)})
    kafka = LocalKafka(settings, lambda line: progress(f"[kafka] {line}"))
    ours = not kafka.running()
    kafka.up()
    try:
        yield {**env, "BANTER_KAFKA_BOOTSTRAP": settings.bootstrap}
    finally:
        if ours and not keep:
            kafka.down()


class Ports:
    """Web ports for workers, from ``first`` upwards, skipping ports in use."""

    def __init__(self, first: int) -> None:
        self.next = first

    def take(self) -> int:
        while port_open(self.next):
            self.next += 1
        self.next += 1
        return self.next - 1


@dataclass
class Deployment:
    """The workers of one configuration, sharing fresh topics and a consumer group."""

    name: str
    specs: tuple[WorkerSpec, ...]
    base_env: dict[str, str]
    logs: Path
    extra: dict[str, str] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        prefix = f"bench-{self.name}-{uuid.uuid4().hex[:6]}"
        self.env = {**self.base_env, "BANTER_TOPIC_PREFIX": prefix, "BANTER_APP_ID": prefix, **self.extra}
        self.settings = Settings.from_env(self.env)

    def start(self, ports: Ports, progress: Progress, timeout_s: float) -> None:
        """Create the topics, start every worker, and wait until each is ready and the pipeline warm."""
        asyncio.run(ensure_topics(self.settings))
        for i, spec in enumerate(self.specs):
            port = ports.take()
            env = {**self.env, "BANTER_ROLES": spec.roles, "BANTER_WEB_PORT": str(port)}
            if spec.own_group:
                env["BANTER_APP_ID"] = f"{env['BANTER_APP_ID']}-{i}"
            log = self.logs / f"{self.name}-{i}.log"
            log.unlink(missing_ok=True)  # WorkerProcess appends: a log holds this run's worker only
            self.workers.append(WorkerProcess(env, log).start())
            self.ports.append(port)
            progress(
                f"{self.name}: worker {i} (roles {spec.describe()}) on web port {port}, log {self.workers[-1].log_path}"
            )
        deadline = time.monotonic() + timeout_s
        for worker, port in zip(self.workers, self.ports, strict=True):
            _wait_ready(worker, port, deadline)
        asyncio.run(_warm(self.settings, max(10.0, deadline - time.monotonic())))
        progress(f"{self.name}: ready")

    def check_alive(self) -> None:
        """RuntimeError if a worker has exited, with the first error its log shows."""
        for i, worker in enumerate(self.workers):
            if not worker.alive:
                code = worker.process.returncode if worker.process else None
                raise RuntimeError(
                    f"worker {i} exited (code {code}): {first_error(worker.log_path)} (log {worker.log_path})"
                )

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def probes(self) -> list[Probe]:
        return [Probe(w.process.pid, port) for w, port in zip(self.workers, self.ports, strict=True) if w.process]


def first_error(log_path: Path) -> str:
    """Why a worker stopped, from its JSON log: the first crash, else the first error, shortened."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    errors = [str(e.get("msg", "")) for e in map(_json, lines) if e.get("level") in ("error", "critical")]
    crashes = [msg for msg in errors if "Crashed reason" in msg]
    return (crashes or errors or ["no error logged"])[0][:300]


def _json(line: str) -> dict[str, object]:
    try:
        entry = json.loads(line)
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


def _wait_ready(worker: WorkerProcess, port: int, deadline: float) -> None:
    url = f"http://127.0.0.1:{port}/ready"
    while not answers_200(url):
        if not worker.alive:
            raise RuntimeError(f"worker exited before it was ready; log {worker.log_path}:\n{worker.log_tail(20)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready in time; log {worker.log_path}:\n{worker.log_tail(20)}")
        time.sleep(0.5)


async def _warm(settings: Settings, timeout_s: float) -> None:
    async with connected(settings) as client:
        await client.wait_warm(timeout_s)
