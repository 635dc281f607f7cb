"""banter's local Apache Kafka broker (KRaft, no ZooKeeper, no Docker).

The jars come from Maven Central through ``infra/kafka/pom.xml`` into a Maven
repository under ``BANTER_HOME`` (outside the repo); a second run reuses them.
The broker runs detached on loopback, with its pid, log and data under
``BANTER_HOME/kafka/broker-<port>/``. ``LocalCluster`` runs several such brokers
as one replicated cluster (the broker-fault tests).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from streams.settings import Settings

log = logging.getLogger(__name__)
Progress = Callable[[str], None]
INFRA_KAFKA = Path(__file__).resolve().parent.parent / "infra" / "kafka"


class BrokerError(RuntimeError):
    """The local broker cannot be resolved, started or reached; the text says how to fix it."""


@dataclass(frozen=True)
class LocalKafka:
    """One local broker: where its files live and how to run it."""

    settings: Settings
    progress: Progress = log.info
    voters: tuple[int, ...] = ()
    """The client ports of its cluster's nodes in node-id order, this one's included; () = a cluster of one."""
    extra_properties: tuple[tuple[str, str], ...] = ()
    """(key, value) lines added at the end of server.properties, where a later line wins: a TLS or SASL listener."""
    format_args: tuple[str, ...] = ()
    """More arguments to ``kafka-storage format``: ``--add-scram`` users, say."""

    @property
    def port(self) -> int:
        return self.settings.local_kafka_port

    @property
    def quorum(self) -> tuple[int, ...]:
        return self.voters or (self.port,)

    @property
    def node_id(self) -> int:
        return self.quorum.index(self.port) + 1

    @property
    def root(self) -> Path:
        return self.settings.home / "kafka" / f"broker-{self.port}"

    @property
    def classpath_file(self) -> Path:
        return self.settings.home / "kafka" / f"classpath-{self.settings.kafka_version}.txt"

    def up(self, timeout_s: float = 90.0) -> None:
        """Resolve, format and start the broker unless it already runs."""
        if self.running():
            self.progress(f"Kafka already up on 127.0.0.1:{self.port}")
            return
        classpath = self.resolve()
        self._format(classpath)
        self._start(classpath, timeout_s)

    def down(self, timeout_s: float = 30.0, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Stop the broker (``sig=SIGKILL``: as a crash would); True if one was running."""
        pid = self._pid()
        if pid is None:
            return False
        self.progress(f"stopping Kafka on port {self.port} (pid {pid}, {sig.name})")
        _signal(pid, sig)
        if not _wait(lambda: not _alive(pid), timeout_s):
            _signal(pid, signal.SIGKILL)
            _wait(lambda: not _alive(pid), 5.0)
        (self.root / "broker.pid").unlink(missing_ok=True)
        return True

    def running(self) -> bool:
        pid = self._pid()
        return pid is not None and port_open(self.port)

    def status(self) -> str:
        pid = self._pid()
        if pid is None:
            return f"Kafka is down (port {self.port})"
        state = "up" if port_open(self.port) else "starting or stuck"
        return f"Kafka {self.settings.kafka_version} is {state}: pid {pid}, 127.0.0.1:{self.port}"

    def resolve(self) -> str:
        """The broker's classpath, resolving it from Maven Central on first use."""
        cached = self._cached_classpath()
        if cached:
            return cached
        _require("java", "Java 17 or newer is needed to run Kafka: apt-get install openjdk-17-jre-headless")
        _require("mvn", "Maven is needed to fetch Kafka from Maven Central: apt-get install maven")
        self.progress(f"resolving Apache Kafka {self.settings.kafka_version} from Maven Central (first run only)")
        self.classpath_file.parent.mkdir(parents=True, exist_ok=True)
        self._run_maven()
        cached = self._cached_classpath()
        if not cached:
            raise BrokerError(f"Maven produced no classpath; see {self._maven_log()}")
        return cached

    def _cached_classpath(self) -> str | None:
        if not self.classpath_file.exists():
            return None
        classpath = self.classpath_file.read_text().strip()
        jars = classpath.split(os.pathsep)
        return classpath if jars and all(Path(jar).exists() for jar in jars) else None

    def _run_maven(self) -> None:
        command = [
            "mvn",
            "-B",
            "-f",
            str(INFRA_KAFKA / "pom.xml"),
            f"-Dmaven.repo.local={self.settings.home / 'm2'}",
            f"-Dkafka.version={self.settings.kafka_version}",
            "dependency:build-classpath",
            f"-Dmdep.outputFile={self.classpath_file}",
        ]
        started, fetched = time.monotonic(), 0
        with self._maven_log().open("w") as logfile:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert process.stdout is not None
            for line in process.stdout:
                logfile.write(line)
                if "Downloaded from" in line:  # Maven prints "[INFO] Downloaded from central: ..."
                    fetched += 1
                    if fetched % 25 == 0:
                        self.progress(f"  {fetched} files downloaded ({time.monotonic() - started:.0f} s)")
        if process.wait() != 0:
            raise BrokerError(
                f"Maven could not resolve Kafka {self.settings.kafka_version}; "
                f"see {self._maven_log()} (is Maven Central reachable?)"
            )
        self.progress(f"  Kafka resolved: {fetched} files in {time.monotonic() - started:.0f} s")

    def _maven_log(self) -> Path:
        return self.settings.home / "kafka" / "maven.log"

    def _format(self, classpath: str) -> None:
        data = self.root / "data"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "server.properties").write_text(self._properties(data))
        if (data / "meta.properties").exists():
            return
        self.progress("formatting KRaft storage")
        result = subprocess.run(
            self._java(
                classpath,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_cluster_id(','.join(map(str, self.voters)))}",
                "-c",
                str(self.root / "server.properties"),
                *self.format_args,
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")

    def _start(self, classpath: str, timeout_s: float) -> None:
        self._await(self._launch(classpath), timeout_s)

    def _launch(self, classpath: str) -> subprocess.Popen[bytes]:
        _free_or_fail(self.port)
        self.progress(f"starting Kafka {self.settings.kafka_version} on 127.0.0.1:{self.port}")
        with (self.root / "broker.log").open("ab") as logfile:
            process = subprocess.Popen(
                self._java(classpath, "kafka.Kafka", str(self.root / "server.properties")),
                stdout=logfile,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        (self.root / "broker.pid").write_text(str(process.pid))
        return process

    def _await(self, process: subprocess.Popen[bytes], timeout_s: float) -> None:
        started = time.monotonic()
        if not _wait(lambda: port_open(self.port) or process.poll() is not None, timeout_s):
            self.down()
            raise BrokerError(f"Kafka did not answer within {timeout_s:.0f} s; see {self.root / 'broker.log'}")
        if process.poll() is not None:
            raise BrokerError(f"Kafka exited at start; see {self.root / 'broker.log'}")
        self.progress(f"Kafka up in {time.monotonic() - started:.1f} s")

    def _java(self, classpath: str, main: str, *args: str) -> list[str]:
        log4j = INFRA_KAFKA / "log4j2.yaml"
        return [
            "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            classpath,
            main,
            *args,
        ]

    def _properties(self, data: Path) -> str:
        port, controller = self.port, self.port + 1
        partitions = self.settings.partitions
        voters = ",".join(f"{node}@127.0.0.1:{client + 1}" for node, client in enumerate(self.quorum, 1))
        replicas = min(len(self.quorum), 3)
        min_isr = replicas // 2 + 1  # acks=all writes go on while a minority of the replicas is down
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={data}",
                f"num.partitions={partitions}",
                f"default.replication.factor={replicas}",
                f"min.insync.replicas={min_isr}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "log.retention.hours=24",
                *(f"{key}={value}" for key, value in self.extra_properties),
                "",
            ]
        )

    def _pid(self) -> int | None:
        path = self.root / "broker.pid"
        if not path.exists():
            return None
        pid = int(path.read_text().strip() or 0)
        return pid if pid and _alive(pid) else None


@dataclass(frozen=True)
class LocalCluster:
    """``size`` local brokers as one KRaft cluster, each node a broker and a controller voter.

    Node ``n`` (from 1) listens on ``first_port + 2 * (n - 1)`` for clients and one port up for the
    quorum; its files are a ``LocalKafka``'s. Topics get ``min(size, 3)`` replicas by default, the
    internal ones too, and an acks=all write needs a majority of them in sync.
    """

    settings: Settings
    first_port: int
    size: int = 3
    progress: Progress = log.info

    @property
    def nodes(self) -> list[LocalKafka]:
        ports = tuple(self.first_port + 2 * i for i in range(self.size))
        return [LocalKafka(replace(self.settings, local_kafka_port=p), self.progress, ports) for p in ports]

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def up(self, timeout_s: float = 120.0) -> None:
        """Start every node not running, together (a node waits for a quorum), until all serve as brokers."""
        classpath = self.nodes[0].resolve()
        launched = []
        for node in self.nodes:
            if not node.running():
                node._format(classpath)
                launched.append((node, node._launch(classpath)))
        for node, process in launched:
            node._await(process, timeout_s)
        if not _wait(lambda: brokers_up(self.bootstrap) >= self.size, timeout_s):
            raise BrokerError(f"not all {self.size} brokers joined within {timeout_s:.0f} s; see their broker.log")

    def stop(self, node_id: int, kill: bool = False) -> None:
        """Stop one node: a controlled shutdown (SIGTERM), or kill -9 as a crash would."""
        self.node(node_id).down(sig=signal.SIGKILL if kill else signal.SIGTERM)

    def start(self, node_id: int, timeout_s: float = 90.0) -> None:
        """Start one node again; it rejoins the running quorum with its data."""
        self.node(node_id).up(timeout_s)

    def down(self, timeout_s: float = 15.0) -> None:
        """Stop every node at once (one by one, the last would wait for a quorum that is gone); a node
        still up after ``timeout_s`` (its controlled shutdown waits for a lost quorum) is killed."""
        with ThreadPoolExecutor(self.size) as pool:
            list(pool.map(lambda node: node.down(timeout_s), self.nodes))


def brokers_up(bootstrap: str) -> int:
    """How many brokers the cluster's metadata lists (a fenced one is left out); 0 if none answers."""

    async def count() -> int:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await client.bootstrap()
            return len(client.cluster.brokers())
        finally:
            await client.close()

    try:
        return asyncio.run(count())
    except (KafkaError, OSError):
        return 0


def _cluster_id(seed: str = "") -> str:
    """A Kafka cluster id: 16 random bytes, or bytes derived from ``seed`` (the nodes of a cluster
    must agree on it, also when one is formatted again), URL-safe base64 without padding."""
    raw = uuid.uuid5(uuid.NAMESPACE_URL, f"banter-kafka:{seed}") if seed else uuid.uuid4()
    return base64.urlsafe_b64encode(raw.bytes).decode().rstrip("=")


def _require(tool: str, fix: str) -> None:
    if shutil.which(tool) is None:
        raise BrokerError(f"{tool} not found. {fix}")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _free_or_fail(port: int) -> None:
    if port_open(port):
        raise BrokerError(f"port {port} is taken by another program; stop it or set BANTER_LOCAL_KAFKA_PORT")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return True


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _wait(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()
