"""The one settings object, read from ``BANTER_*`` environment variables.

This is the only module of banter that reads the environment. Each field names
its variable and says what it is for; ``banter settings`` prints them all.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints


class Secret(str):
    """A string that never shows itself in a repr, a log line or a label."""

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"

    def reveal(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return "**********" if self else ""


def _setting(default: Any, env: str, doc: str) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """banter's configuration; build it with ``Settings.from_env()``."""

    kafka_bootstrap: str = _setting(
        "", "BANTER_KAFKA_BOOTSTRAP", "Kafka bootstrap servers; empty = banter's local broker"
    )
    kafka_security_protocol: str = _setting(
        "",
        "BANTER_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; empty = SASL_ with a user, SSL with a CA file",
    )
    kafka_sasl_mechanism: str = _setting(
        "PLAIN", "BANTER_KAFKA_SASL_MECHANISM", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    kafka_username: str = _setting("", "BANTER_KAFKA_USERNAME", "SASL user, if any")
    kafka_password: Secret = _setting(Secret(""), "BANTER_KAFKA_PASSWORD", "SASL password")
    kafka_ssl_cafile: str = _setting(
        "", "BANTER_KAFKA_SSL_CAFILE", "PEM file of the CA that signed the brokers' certificates; empty = system CAs"
    )
    kafka_ssl_certfile: str = _setting(
        "", "BANTER_KAFKA_SSL_CERTFILE", "PEM client certificate (chain) for mutual TLS, if the brokers ask for one"
    )
    kafka_ssl_keyfile: str = _setting(
        "", "BANTER_KAFKA_SSL_KEYFILE", "PEM private key of the client certificate; empty = in the certificate file"
    )
    kafka_ssl_key_password: Secret = _setting(
        Secret(""), "BANTER_KAFKA_SSL_KEY_PASSWORD", "password of the client's private key, if it is encrypted"
    )
    kafka_version: str = _setting("4.4.0", "BANTER_KAFKA_VERSION", "Apache Kafka for the local broker")
    local_kafka_port: int = _setting(19092, "BANTER_LOCAL_KAFKA_PORT", "local broker's client port")
    home: Path = _setting(Path.home() / ".cache" / "banter", "BANTER_HOME", "cache: Kafka jars, broker data, models")
    app_id: str = _setting("banter", "BANTER_APP_ID", "Faust app id = Kafka consumer group")
    topic_prefix: str = _setting("banter", "BANTER_TOPIC_PREFIX", "prefix of every topic name")
    partitions: int = _setting(8, "BANTER_PARTITIONS", "partitions of every banter topic")
    replication: int = _setting(1, "BANTER_REPLICATION", "replication factor of every topic")
    session_timeout_s: float = _setting(
        10.0, "BANTER_SESSION_TIMEOUT_S", "consumer session timeout: how soon a dead worker's partitions move"
    )
    worker_name: str = _setting(
        "",
        "BANTER_WORKER_NAME",
        "this worker's stable name (its local state and its static group membership); empty = host-webport",
    )
    static_membership: bool = _setting(
        True,
        "BANTER_STATIC_MEMBERSHIP",
        "join the group as a static member named by the worker name: a worker restarted under the same name "
        "gets its partitions back at once, without waiting out the session timeout",
    )
    data_dir: str = _setting("", "BANTER_DATA_DIR", "this worker's local state; empty = home/faust/<app id>/<worker>")
    table_store: str = _setting(
        "rocksdb",
        "BANTER_TABLE_STORE",
        "where the conversations table lives: rocksdb (on disk; a restart reads only the changelog's new "
        "records) or memory (a restart reads the whole changelog)",
    )
    web_host: str = _setting("127.0.0.1", "BANTER_WEB_HOST", "worker web server host (/metrics)")
    web_port: int = _setting(6066, "BANTER_WEB_PORT", "worker web server port (/metrics)")
    roles: str = _setting("all", "BANTER_ROLES", "agents this worker runs: all, or a comma list of agent names")
    budget_ms: float = _setting(1000.0, "BANTER_BUDGET_MS", "latency budget per message")
    platform_budgets_ms: str = _setting(
        "", "BANTER_PLATFORM_BUDGETS_MS", "per-platform budgets, e.g. 'web=800,messenger=1500'"
    )
    history_turns: int = _setting(8, "BANTER_HISTORY_TURNS", "turns of history kept per turn")
    max_batch: int = _setting(32, "BANTER_MAX_BATCH", "largest micro-batch a model agent takes")
    batch_wait_ms: float = _setting(4.0, "BANTER_BATCH_WAIT_MS", "how long a batch may wait to fill")
    canned_confidence: float = _setting(
        0.7, "BANTER_CANNED_CONFIDENCE", "intent confidence that earns a canned reply at once"
    )
    accept_quality: float = _setting(
        -1.0,
        "BANTER_ACCEPT_QUALITY",
        "a retrieval reply this good is sent without waiting for the generator; -1 = the selector's fitted value",
    )
    latency_quantile: float = _setting(
        0.95, "BANTER_LATENCY_QUANTILE", "quantile of live model latency used to predict misses"
    )
    reply_margin_ms: float = _setting(
        50.0, "BANTER_REPLY_MARGIN_MS", "the router answers this long before a deadline, so the reply lands in time"
    )
    producer_linger_ms: int = _setting(
        1, "BANTER_PRODUCER_LINGER_MS", "how long the producer gathers records into one request (latency vs. load)"
    )
    late_wait_ms: float = _setting(
        30000.0,
        "BANTER_LATE_WAIT_MS",
        "past its deadline a message still waits this long for intent and retrieval before the fallback line",
    )
    shadow_grace_ms: float = _setting(
        2000.0, "BANTER_SHADOW_GRACE_MS", "how long after a reply late outputs still join its event"
    )
    encoder: str = _setting("", "BANTER_ENCODER", "encoder HF id or path; empty = packaged MiniLM")
    precision: str = _setting("fp32", "BANTER_PRECISION", "encoder precision: fp32 or int8")
    ort_threads: int = _setting(1, "BANTER_ORT_THREADS", "onnxruntime intra-op threads")
    blas_threads: int = _setting(1, "BANTER_BLAS_THREADS", "numpy BLAS threads for the selector and responder")
    generator: str = _setting("", "BANTER_GENERATOR", "causal LM HF id or path; empty = SmolLM2-135M-Instruct")
    generator_adapter: str = _setting(
        "",
        "BANTER_GENERATOR_ADAPTER",
        "LoRA adapter folder merged into the generator at build; "
        "empty = banter's fine-tune for the default model, 'none' = no adapter",
    )
    generator_max_new_tokens: int = _setting(32, "BANTER_GENERATOR_MAX_NEW_TOKENS", "cap on generated tokens")
    generator_max_time_s: float = _setting(0.6, "BANTER_GENERATOR_MAX_TIME_S", "cap on one generation's wall time")
    generator_threads: int = _setting(
        1, "BANTER_GENERATOR_THREADS", "CTranslate2 threads for the generator (the rest serve the encoder and the loop)"
    )
    generator_nice: int = _setting(
        10,
        "BANTER_GENERATOR_NICE",
        "OS niceness of the generator's threads (0-19): the event loop and the understand step come first",
    )
    gateway_host: str = _setting("127.0.0.1", "BANTER_GATEWAY_HOST", "HTTP gateway host (`banter gateway`)")
    gateway_port: int = _setting(8066, "BANTER_GATEWAY_PORT", "HTTP gateway port")
    gateway_tokens: Secret = _setting(
        Secret(""),
        "BANTER_GATEWAY_TOKENS",
        "gateway bearer token per platform, 'web=secret1,messenger=secret2'; empty = no auth (local use only)",
    )
    gateway_wait_ms: float = _setting(
        1500.0, "BANTER_GATEWAY_WAIT_MS", "how long POST /v1/messages waits for the reply before answering 202"
    )
    gateway_max_wait_ms: float = _setting(
        30000.0, "BANTER_GATEWAY_MAX_WAIT_MS", "the longest a POST waits for its reply, whatever its ?wait_ms= asks"
    )
    gateway_max_body_bytes: int = _setting(16384, "BANTER_GATEWAY_MAX_BODY_BYTES", "larger request bodies get 413")
    gateway_rate_per_s: float = _setting(
        50.0, "BANTER_GATEWAY_RATE_PER_S", "requests per second per token (token bucket); over it, 429"
    )
    gateway_burst: int = _setting(100, "BANTER_GATEWAY_BURST", "requests a token may send at once (bucket size)")
    gateway_webhooks: str = _setting(
        "", "BANTER_GATEWAY_WEBHOOKS", "reply webhook per platform, 'web=https://host/path,...' (after a 202)"
    )
    gateway_remember: int = _setting(
        100_000, "BANTER_GATEWAY_REMEMBER", "messages the gateway remembers (replies for GET, idempotent retries)"
    )
    gateway_conversations: int = _setting(
        10_000, "BANTER_GATEWAY_CONVERSATIONS", "conversations whose recent turns the gateway keeps"
    )
    gateway_history_turns: int = _setting(50, "BANTER_GATEWAY_HISTORY_TURNS", "turns kept per conversation")
    gateway_lookback_s: float = _setting(
        300.0, "BANTER_GATEWAY_LOOKBACK_S", "on start, the gateway reads back this much of messages and replies"
    )
    state_idle_s: float = _setting(
        7 * 86400.0,
        "BANTER_STATE_IDLE_S",
        "a conversation's history is forgotten (a tombstone in its changelog) after this long without a message",
    )
    routing_idle_s: float = _setting(
        600.0,
        "BANTER_ROUTING_IDLE_S",
        "the router forgets a conversation with nothing pending after this long (its replay guard no longer needed)",
    )
    log_level: str = _setting("info", "BANTER_LOG_LEVEL", "worker log level")
    log_text: bool = _setting(False, "BANTER_LOG_TEXT", "allow message and reply text in logs (off: never logged)")

    def __post_init__(self) -> None:
        if self.table_store not in {"rocksdb", "memory"}:
            raise ValueError(f"setting BANTER_TABLE_STORE: {self.table_store!r} is neither rocksdb nor memory")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every field from its variable, falling back to the default."""
        env = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values = {
            f.name: _parse(env[f.metadata["env"]], hints[f.name], f.name)
            for f in dataclasses.fields(cls)
            if f.metadata["env"] in env
        }
        return cls(**values)

    @property
    def uses_local_broker(self) -> bool:
        return not self.kafka_bootstrap

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.local_kafka_port}"

    @property
    def worker(self) -> str:
        """This worker's stable name: two workers on one host differ at least in their web port."""
        return self.worker_name or f"{socket.gethostname()}-{self.web_port}"

    @property
    def state_dir(self) -> Path:
        """This worker's own local state (RocksDB tables); never shared by two running workers."""
        return Path(self.data_dir).expanduser() if self.data_dir else self.home / "faust" / self.app_id / self.worker

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    def budget_for(self, platform: str) -> float:
        """The latency budget in ms for a platform."""
        return _parse_budgets(self.platform_budgets_ms).get(platform, self.budget_ms)

    def runs(self, agent: str) -> bool:
        """Whether this worker runs ``agent``; the roles ``intent`` and ``responder`` name the understand step."""
        roles = {role.strip() for role in self.roles.split(",")}
        if roles & {"intent", "responder"}:
            roles.add("understand")
        return "all" in roles or agent in roles

    def gateway_token_map(self) -> dict[str, str]:
        """Platform → bearer token, from ``BANTER_GATEWAY_TOKENS``."""
        return _parse_pairs(self.gateway_tokens.reveal())

    def gateway_webhook_map(self) -> dict[str, str]:
        """Platform → webhook URL, from ``BANTER_GATEWAY_WEBHOOKS``."""
        return _parse_pairs(self.gateway_webhooks)

    def describe(self) -> list[tuple[str, str, str]]:
        """(variable, value, doc) for each setting; secrets stay hidden."""
        return [(f.metadata["env"], str(getattr(self, f.name)), f.metadata["doc"]) for f in dataclasses.fields(self)]


def _parse(raw: str, kind: Any, name: str) -> Any:
    try:
        if kind is bool:
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind is Path:
            return Path(raw).expanduser()
        return kind(raw)
    except ValueError:
        raise ValueError(f"setting {name}: cannot read {raw!r} as {kind.__name__}") from None


def _parse_budgets(raw: str) -> dict[str, float]:
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {key.strip(): float(value) for key, value in pairs}


def _parse_pairs(raw: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in raw.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs if key.strip() and value.strip()}
