"""A real Apache Kafka broker for the session, and real banter workers per test.

The broker is banter's own local KRaft broker on a test port (or the cluster
named by BANTER_KAFKA_BOOTSTRAP). If it cannot start, the tests fail: they
never skip for want of a broker. Each worker gets its own topic prefix, app id
(consumer group) and web port, so tests never see each other's records.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.build import artifacts
from streams.broker import BrokerError, LocalKafka
from streams.client import connected
from streams.kafka import ensure_topics
from streams.process import WorkerProcess
from streams.services import model_config
from streams.settings import Settings

TEST_PORT = os.environ.get("BANTER_TEST_KAFKA_PORT", "19192")  # a second session in parallel: its own broker
# The caller's choice of caches and models reaches the test workers; every other setting is the test's.
PASSED_THROUGH = {"BANTER_HOME", "BANTER_ENCODER", "BANTER_PRECISION", "BANTER_GENERATOR"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def base_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment for workers and clients: the session broker, the shared caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANTER_") or k in PASSED_THROUGH}
    if os.environ.get("BANTER_KAFKA_BOOTSTRAP"):
        env["BANTER_KAFKA_BOOTSTRAP"] = os.environ["BANTER_KAFKA_BOOTSTRAP"]
        yield env
        return
    settings = Settings.from_env({**env, "BANTER_LOCAL_KAFKA_PORT": TEST_PORT})
    kafka = LocalKafka(settings, lambda line: print(f"[kafka] {line}", flush=True))
    ours = not kafka.running()  # another test session may share this broker: only its starter stops it
    try:
        kafka.up()
    except BrokerError as exc:
        pytest.fail(f"the integration tests need the local Kafka broker: {exc}")
    env["BANTER_KAFKA_BOOTSTRAP"] = settings.bootstrap
    try:
        yield env
    finally:
        if ours:
            kafka.down()
            log = kafka.root / "broker.log"
            if log.exists():  # kept beside the workers' logs for a post-mortem
                shutil.copy(log, tmp_path_factory.getbasetemp() / "broker.log")
            shutil.rmtree(kafka.root, ignore_errors=True)


@pytest.fixture(scope="session")
def built_models(base_env: dict[str, str]) -> None:
    """Build (or reuse) the model artifacts every worker loads."""
    config = model_config(Settings.from_env(base_env))
    if artifacts.check(config):
        artifacts.build_all(config, lambda line: print(f"[models] {line}", flush=True))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker(WorkerProcess):
    """A worker process that a test can wait for."""

    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Ready when a greeting is answered by a model (not the fallback line)."""

        async def probe() -> None:
            async with connected(self.settings) as client:
                await client.wait_ready(timeout_s)

        try:
            asyncio.run(probe())
        except TimeoutError:
            pytest.fail(f"worker gave no model reply within {timeout_s:.0f} s; log:\n{self.log_tail()}")


class Workers:
    """Starts workers that share one test's topics, group and caches."""

    def __init__(self, base_env: dict[str, str], logs: Path) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.base_env, self.logs = base_env, logs
        self.started: list[Worker] = []

    def __call__(self, **settings: str) -> Worker:
        env = {
            **self.base_env,
            "BANTER_TOPIC_PREFIX": self.prefix,
            "BANTER_APP_ID": f"{self.prefix}-app",
            "BANTER_WEB_PORT": str(_free_port()),
            "BANTER_DATA_DIR": str(self.logs / f"state-{len(self.started)}"),  # a restart keeps it, as a pod would
            "BANTER_LOG_LEVEL": "info",
            **settings,
        }
        asyncio.run(ensure_topics(Settings.from_env(env)))
        return self._start(env)

    def restart(self, worker: Worker) -> Worker:
        """A new process in the same group with the same settings (after a kill)."""
        return self._start(worker.env)

    def _start(self, env: dict[str, str]) -> Worker:
        """A worker; one given a ``FAULT_*`` variable runs under ``tests/faults.py``'s wiring."""
        module = "tests.faults" if any(name.startswith("FAULT_") for name in env) else "streams"
        worker = Worker(env, self.logs / f"worker-{len(self.started)}.log", module=module).start()
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.started:
            worker.stop()


@pytest.fixture
def worker_factory(base_env: dict[str, str], built_models: None, tmp_path: Path) -> Iterator[Workers]:
    """Start workers with per-test topics; every one is stopped at the end of the test."""
    workers = Workers(base_env, tmp_path)
    yield workers
    workers.stop_all()
