"""How banter reaches Kafka: connection options and credentials, its topic names, and creating them.

Every client of banter's (the faust app, the platform client, the gateway, the
gap reader, the analytics reader, the benchmarks) takes its connection from
here, so security (TLS, SASL/PLAIN or SCRAM) is set in one place, by settings.
Importing it also installs ``streams.tracked_topics`` (an aiokafka workaround:
a record sent is never left without its topic's metadata).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import Iterator
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka import errors as kafka_errors
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import create_conn
from aiokafka.protocol.metadata import MetadataRequest

from streams import tracked_topics
from streams.settings import Settings

tracked_topics.install()  # before any client of this process sends (see streams.tracked_topics)

TOPICS = ("messages", "turns", "outputs", "replies", "events", "deadletter")
"""banter's topics (DESIGN.md's table), each ``<BANTER_TOPIC_PREFIX>.<name>``."""

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
PROBE_TIMEOUT_MS = 10_000


class KafkaSetupError(ConnectionError):
    """banter cannot reach Kafka as configured; the text names the setting to fix."""


def security_protocol(settings: Settings) -> str:
    """The protocol in use: ``BANTER_KAFKA_SECURITY_PROTOCOL``, or SASL_ with a user and SSL with a CA file.

    Raises ``KafkaSetupError`` for a value or a combination of settings that cannot work.
    """
    protocol = settings.kafka_security_protocol.strip().upper() or _implied_protocol(settings)
    if protocol not in PROTOCOLS:
        raise _bad("BANTER_KAFKA_SECURITY_PROTOCOL", settings.kafka_security_protocol, PROTOCOLS)
    sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
    if sasl and not (settings.kafka_username and settings.kafka_password):
        raise KafkaSetupError(f"{protocol} needs BANTER_KAFKA_USERNAME and BANTER_KAFKA_PASSWORD")
    if settings.kafka_username and not sasl:
        raise KafkaSetupError(
            f"BANTER_KAFKA_USERNAME is set but BANTER_KAFKA_SECURITY_PROTOCOL={protocol} sends no user:"
            f" set it to SASL_{'SSL' if tls else 'PLAINTEXT'}"
        )
    if sasl and _mechanism(settings) not in MECHANISMS:
        raise _bad("BANTER_KAFKA_SASL_MECHANISM", settings.kafka_sasl_mechanism, MECHANISMS)
    files = {"CAFILE": settings.kafka_ssl_cafile, "CERTFILE": settings.kafka_ssl_certfile}
    unused = [name for name, path in files.items() if path and not tls]
    if unused:
        raise KafkaSetupError(
            f"BANTER_KAFKA_SSL_{unused[0]} is set but BANTER_KAFKA_SECURITY_PROTOCOL={protocol} uses no TLS:"
            " set it to SSL or SASL_SSL"
        )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise KafkaSetupError("BANTER_KAFKA_SSL_KEYFILE is set without BANTER_KAFKA_SSL_CERTFILE, the certificate")
    return protocol


def _implied_protocol(settings: Settings) -> str:
    tls = bool(settings.kafka_ssl_cafile or settings.kafka_ssl_certfile)
    return ("SASL_" if settings.kafka_username else "") + ("SSL" if tls else "PLAINTEXT")


def _mechanism(settings: Settings) -> str:
    return settings.kafka_sasl_mechanism.strip().upper()


def _bad(variable: str, value: str, choices: tuple[str, ...]) -> KafkaSetupError:
    return KafkaSetupError(f"{variable}={value!r} is not one of {', '.join(choices)}")


def kafka_options(settings: Settings) -> dict[str, Any]:
    """aiokafka's connection options: bootstrap servers, security protocol, SASL and the TLS context."""
    protocol = security_protocol(settings)
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap, "security_protocol": protocol}
    if protocol.startswith("SASL_"):
        options |= {
            "sasl_mechanism": _mechanism(settings),
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password.reveal(),
        }
    if protocol.endswith("SSL"):
        options["ssl_context"] = ssl_context(settings)
    return options


def faust_credentials(settings: Settings) -> Any:
    """The same connection security as faust takes it: SASL or SSL credentials, or None for PLAINTEXT."""
    protocol = security_protocol(settings)
    context = ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_username,
            password=settings.kafka_password.reveal(),
            mechanism=_mechanism(settings),
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


@functools.lru_cache(maxsize=8)
def ssl_context(settings: Settings) -> ssl.SSLContext:
    """A TLS client context that verifies the brokers (against the CA file, else the system's CAs)
    and checks their host names; with a client certificate for mutual TLS when one is set.

    One per settings: every client of a process shares it, and reads the files once.
    """
    cafile, certfile = settings.kafka_ssl_cafile, settings.kafka_ssl_certfile
    with _pem_errors("BANTER_KAFKA_SSL_CAFILE", cafile):
        context = ssl.create_default_context(cafile=cafile or None)
    if certfile:
        keyfile = settings.kafka_ssl_keyfile or None
        client = "BANTER_KAFKA_SSL_CERTFILE, BANTER_KAFKA_SSL_KEYFILE or BANTER_KAFKA_SSL_KEY_PASSWORD"
        with _pem_errors(client, f"{certfile} (key: {keyfile or 'in the certificate file'})"):
            context.load_cert_chain(certfile, keyfile, password=settings.kafka_ssl_key_password.reveal() or None)
    return context


@contextlib.contextmanager
def _pem_errors(variables: str, path: str) -> Iterator[None]:
    """Turns a missing or unreadable PEM file into a ``KafkaSetupError`` naming its settings."""
    try:
        yield
    except FileNotFoundError as exc:
        raise KafkaSetupError(f"{variables}: no such file: {path}") from exc
    except OSError as exc:  # ssl.SSLError among them: not PEM, or a key that does not open
        raise KafkaSetupError(f"{variables}: cannot use {path}: {exc}") from exc


async def explain(settings: Settings) -> str | None:
    """Why one connection to the first bootstrap server fails as configured, naming the setting to fix;
    None when it connects and reads the cluster's metadata."""
    options = kafka_options(settings)
    server = options.pop("bootstrap_servers").split(",")[0].strip()
    host, _, port = server.rpartition(":")
    try:
        conn = await create_conn(host, int(port), request_timeout_ms=PROBE_TIMEOUT_MS, **options)
        try:
            await conn.send(MetadataRequest([]))
        finally:
            conn.close()
    except Exception as exc:  # each failure is named below; an unknown one is reported as it is
        return _reason(settings, server, options["security_protocol"], exc)
    return None


def _reason(settings: Settings, server: str, protocol: str, exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of {server} is not trusted ({exc.verify_message}):"
            " set BANTER_KAFKA_SSL_CAFILE to the PEM file of the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return (
            f"TLS with {server} failed ({exc.reason}): is that listener TLS?"
            f" check BANTER_KAFKA_SECURITY_PROTOCOL (now {protocol}) and BANTER_KAFKA_BOOTSTRAP"
        )
    if isinstance(exc, kafka_errors.UnsupportedSaslMechanismError):
        return (
            f"Kafka at {server} does not offer SASL mechanism {_mechanism(settings)}:"
            " set BANTER_KAFKA_SASL_MECHANISM to one it offers"
        )
    if isinstance(exc, kafka_errors.SaslAuthenticationFailed | kafka_errors.AuthenticationFailedError):
        return (
            f"Kafka at {server} refused user {settings.kafka_username!r} with {_mechanism(settings)}"
            f" ({exc}): check BANTER_KAFKA_USERNAME, BANTER_KAFKA_PASSWORD and BANTER_KAFKA_SASL_MECHANISM"
        )
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing listens at {server}: check BANTER_KAFKA_BOOTSTRAP"
    return (
        f"{server} did not answer Kafka's protocol as {protocol} ({type(exc).__name__}: {exc}):"
        " check BANTER_KAFKA_SECURITY_PROTOCOL against the listener (TLS? SASL?) and BANTER_KAFKA_BOOTSTRAP"
    )


async def start(client: Any, settings: Settings) -> None:
    """``await client.start()`` for an aiokafka client; a refused connection raises ``KafkaSetupError``
    saying why (``explain``), the client closed."""
    try:
        await client.start()
    except kafka_errors.KafkaError as exc:
        await _close(client)
        raise KafkaSetupError(await explain(settings) or f"Kafka at {settings.bootstrap}: {exc}") from exc


async def _close(client: Any) -> None:
    close = getattr(client, "close", None) or client.stop
    await close()


async def ensure_topics(settings: Settings, wait_s: float = 30.0) -> list[str]:
    """Create banter's topics with the configured partitions; returns those created.

    Returns once every partition of the created topics has a leader (or after ``wait_s``), so
    that a worker started next sees them whole: a topic without leaders in the group leader's
    metadata is left out of the assignment until the metadata is refreshed.
    """
    admin = AIOKafkaAdminClient(**kafka_options(settings))
    await start(admin, settings)
    try:
        existing = set(await admin.list_topics())
        wanted = [settings.topic(name) for name in TOPICS]
        missing = [name for name in wanted if name not in existing]
        if missing:
            await admin.create_topics([NewTopic(name, settings.partitions, settings.replication) for name in missing])
            await _wait_for_leaders(admin, missing, wait_s)
        return missing
    finally:
        await admin.close()


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        described = await admin.describe_topics(topics)
        ready = [
            t
            for t in described
            if not t.get("error_code")
            and t.get("partitions")
            and all(p.get("leader", -1) >= 0 for p in t["partitions"])
        ]
        if len(ready) == len(topics):
            return
        await asyncio.sleep(0.2)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """``topic``'s partition numbers, refreshing the metadata while the topic is new."""
    for _ in range(50):
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await consumer._client.force_metadata_update()  # topic may have been created a moment ago
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} not found: is the worker set up? run `banter broker up`")


CHANGELOG_CONFIGS = {
    "segment.ms": 600_000,  # a segment rolls every 10 minutes: only closed segments are ever compacted
    "min.cleanable.dirty.ratio": 0.1,  # compact once a tenth of the log is superseded
    "delete.retention.ms": 3_600_000,  # a tombstone stays an hour, so a restarting reader sees the delete
}
"""Topic settings of the tables' changelogs, so that compaction really runs (Kafka's default segment
rolls after 7 days, and until then every update and tombstone is replayed by a restart)."""
