"""banter over SASL/SCRAM with TLS, against a real broker that takes nothing else.

The test makes its own CA and broker certificate, and starts a second local broker
whose only client listener is SASL_SSL with SCRAM users (formatted into its KRaft
metadata). A worker configured by BANTER_* settings alone answers a message end to
end through it; wrong settings (a wrong password, no CA file, a plaintext or
SASL-without-TLS client, an unknown mechanism) are refused, each with an error that
names the setting to fix. The message's text never reaches the worker's log.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from models.build import artifacts
from schemas import Event, decode
from streams.broker import BrokerError, LocalKafka
from streams.client import connected, new_message
from streams.kafka import KafkaSetupError, ensure_topics
from streams.process import WorkerProcess
from streams.services import model_config
from streams.settings import Settings
from tests.integration.conftest import PASSED_THROUGH, Workers
from tests.integration.kafka_io import read_topic

SECURE_PORT = int(os.environ.get("BANTER_TEST_SECURE_KAFKA_PORT", "19692"))  # and one up for its controller
PASSWORD = f"pw-{uuid.uuid4().hex}"
BROKER_PASSWORD = f"pw-{uuid.uuid4().hex}"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: str, signer: rsa.RSAPrivateKey, ca: bool
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:  # the broker: its name as clients dial it, which they check
        names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def make_pki(folder: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate it signed: (ca.pem, broker.pem with the broker's PKCS#8 key and chain)."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("banter test CA", ca_key, "banter test CA", ca_key, ca=True)
    broker_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    broker = _certificate("127.0.0.1", broker_key, "banter test CA", ca_key, ca=False)
    pem = serialization.Encoding.PEM
    key = broker_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "broker.pem").write_bytes(key + broker.public_bytes(pem) + ca.public_bytes(pem))
    return folder / "ca.pem", folder / "broker.pem"


def secured_broker(settings: Settings, ca: Path, keystore: Path) -> LocalKafka:
    """banter's local broker with one client listener, SASL_SSL, and SCRAM users banter and broker."""
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
    listener = f"SASL_SSL://127.0.0.1:{SECURE_PORT}"
    properties = {
        "listeners": f"{listener},CONTROLLER://127.0.0.1:{SECURE_PORT + 1}",
        "advertised.listeners": listener,
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": (
            f'{scram} username="broker" password="{BROKER_PASSWORD}";'
        ),
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{scram};",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(ca),
    }
    users = [
        f"SCRAM-SHA-256=[name=broker,password={BROKER_PASSWORD}]",
        f"SCRAM-SHA-256=[name=banter,password={PASSWORD}]",
        f"SCRAM-SHA-512=[name=banter,password={PASSWORD}]",
    ]
    return LocalKafka(
        settings,
        lambda line: print(f"[secure kafka] {line}", flush=True),
        extra_properties=tuple(properties.items()),
        format_args=tuple(arg for user in users for arg in ("--add-scram", user)),
    )


@pytest.fixture(scope="module")
def secure_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Settings of a client of the secured broker, as environment variables; the broker runs meanwhile."""
    folder = tmp_path_factory.mktemp("pki")
    ca, keystore = make_pki(folder)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BANTER_") or k in PASSED_THROUGH}
    kafka = secured_broker(Settings.from_env({**env, "BANTER_LOCAL_KAFKA_PORT": str(SECURE_PORT)}), ca, keystore)
    kafka.down()  # one left by an interrupted run has other certificates and users: never reused
    shutil.rmtree(kafka.root, ignore_errors=True)  # a fresh format, so that the SCRAM users are ours
    started = time.monotonic()
    try:
        kafka.up()
    except BrokerError as exc:
        pytest.fail(f"the secured broker did not start: {exc}")
    print(f"[secure kafka] up in {time.monotonic() - started:.1f} s", flush=True)
    env |= {
        "BANTER_KAFKA_BOOTSTRAP": f"127.0.0.1:{SECURE_PORT}",
        "BANTER_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "BANTER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
        "BANTER_KAFKA_USERNAME": "banter",
        "BANTER_KAFKA_PASSWORD": PASSWORD,
        "BANTER_KAFKA_SSL_CAFILE": str(ca),
        "BANTER_PARTITIONS": "2",
    }
    try:
        yield env
    finally:
        kafka.down()
        log = kafka.root / "broker.log"
        if log.exists():
            shutil.copy(log, folder / "broker.log")
        shutil.rmtree(kafka.root, ignore_errors=True)


@pytest.fixture
def secure_workers(secure_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    config = model_config(Settings.from_env(secure_env))
    if artifacts.check(config):
        artifacts.build_all(config, lambda line: print(f"[models] {line}", flush=True))
    workers = Workers(secure_env, tmp_path)
    yield workers
    workers.stop_all()


def test_a_worker_set_up_by_settings_answers_over_sasl_ssl_with_scram(secure_workers: Workers) -> None:
    started = time.monotonic()
    worker = secure_workers(BANTER_KAFKA_SASL_MECHANISM="SCRAM-SHA-512")  # the faust app, and every reader
    worker.wait_ready()
    secret = f"my locker code is zebra-{uuid.uuid4().hex[:8]}"

    async def ask() -> str:
        async with connected(worker.settings) as client:  # SCRAM-SHA-512 here too, through the CA file
            reply = await client.ask(new_message(secret, f"c-{uuid.uuid4().hex[:6]}"), timeout_s=30.0)
        return reply.message_id

    message_id = asyncio.run(ask())
    events = asyncio.run(
        read_topic(
            worker.settings,
            "events",
            lambda records: any(decode(r.value, Event).message_id == message_id for r in records),
            timeout_s=30.0,
        )
    )
    assert any(decode(r.value, Event).message_id == message_id for r in events)
    print(f"[secure] worker up and answering over SASL_SSL in {time.monotonic() - started:.1f} s", flush=True)
    assert secret.split()[-1] not in worker.log_path.read_text(errors="replace")  # BANTER_LOG_TEXT is off


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_both_scram_mechanisms_are_taken(secure_env: dict[str, str], mechanism: str) -> None:
    env = {**secure_env, "BANTER_KAFKA_SASL_MECHANISM": mechanism, "BANTER_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:8]}"}
    assert len(asyncio.run(ensure_topics(Settings.from_env(env)))) == 6  # created over SASL_SSL


def _refusal(env: dict[str, str]) -> str:
    with pytest.raises(KafkaSetupError) as refused:
        asyncio.run(ensure_topics(Settings.from_env(env), wait_s=5.0))
    return str(refused.value)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"BANTER_KAFKA_PASSWORD": "not-the-password"}, r"refused user 'banter' with SCRAM-SHA-256 .*PASSWORD"),
        ({"BANTER_KAFKA_USERNAME": "mallory"}, r"refused user 'mallory' .*check BANTER_KAFKA_USERNAME"),
        (
            {"BANTER_KAFKA_SASL_MECHANISM": "PLAIN"},
            r"does not offer SASL mechanism PLAIN: set BANTER_KAFKA_SASL_MECHANISM",
        ),
        ({"BANTER_KAFKA_SSL_CAFILE": ""}, r"certificate of 127.0.0.1:\d+ is not trusted .*BANTER_KAFKA_SSL_CAFILE"),
        (
            {"BANTER_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "BANTER_KAFKA_SSL_CAFILE": ""},
            r"did not answer Kafka's protocol as SASL_PLAINTEXT .*BANTER_KAFKA_SECURITY_PROTOCOL",
        ),
        (
            {"BANTER_KAFKA_SECURITY_PROTOCOL": "SSL", "BANTER_KAFKA_USERNAME": ""},
            r"did not answer Kafka's protocol as SSL .*BANTER_KAFKA_SECURITY_PROTOCOL",
        ),
    ],
)
def test_wrong_settings_are_refused_naming_the_setting_to_fix(
    secure_env: dict[str, str], change: dict[str, str], names: str
) -> None:
    env = {k: v for k, v in {**secure_env, **change}.items() if v}
    reason = _refusal(env)
    assert re.search(names, reason), reason


def test_a_plaintext_client_does_not_get_through(secure_env: dict[str, str]) -> None:
    server = secure_env["BANTER_KAFKA_BOOTSTRAP"]

    async def plain() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=server, request_timeout_ms=5000)
        try:
            await producer.start()
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(plain())
    plaintext = {k: v for k, v in secure_env.items() if not k.startswith("BANTER_KAFKA_") or k.endswith("BOOTSTRAP")}
    assert "check BANTER_KAFKA_SECURITY_PROTOCOL" in _refusal(plaintext)


def test_a_worker_with_a_wrong_password_stops_at_once_saying_why(secure_env: dict[str, str], tmp_path: Path) -> None:
    env = {**secure_env, "BANTER_KAFKA_PASSWORD": "not-the-password", "BANTER_TOPIC_PREFIX": "refused"}
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    assert worker.process is not None
    try:
        code = worker.process.wait(120)
    except subprocess.TimeoutExpired:
        worker.kill()
        pytest.fail(f"a worker with a wrong password kept running; log:\n{worker.log_tail()}")
    log = worker.log_tail()
    assert code != 0 and "refused user 'banter'" in log and "BANTER_KAFKA_PASSWORD" in log, log
    assert "not-the-password" not in log and PASSWORD not in log
