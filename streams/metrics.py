"""Every banter Prometheus metric, defined in one place against an injected registry.

Names follow ``banter_<what>_<unit>``; labels stay low-cardinality (agent, model,
version, stage, source, reason, topic, intent): never a conversation, user or text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Model latency runs from ~1 ms (intent head) to seconds (a slow generator).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.35,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """banter's metrics, registered on ``registry`` (a fresh one per test)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.model_latency = Histogram(
            "banter_model_latency_seconds",
            "Model inference time per batch item",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_batch_size = Histogram(
            "banter_model_batch_size",
            "Messages per inference batch",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.model_outputs = Counter(
            "banter_model_outputs_total",
            "Model outputs by status (ok, skipped, error)",
            ["model", "status"],
            registry=registry,
        )
        self.model_info = Info("banter_model", "Loaded model versions", ["model"], registry=registry)
        self.stage_latency = Histogram(
            "banter_stage_latency_seconds",
            "Time from a record reaching a stage's topic to its output",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.end_to_end = Histogram(
            "banter_end_to_end_latency_seconds",
            "From a message reaching Kafka to its reply",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.messages = Counter(
            "banter_messages_total", "Valid messages accepted by the context agent", registry=registry
        )
        self.intents = Counter("banter_intents_total", "Messages by detected intent", ["intent"], registry=registry)
        self.replies = Counter("banter_replies_total", "Replies by source", ["source"], registry=registry)
        self.fallbacks = Counter(
            "banter_fallbacks_total",
            "Replies not from the preferred model, by reason",
            ["reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "banter_dead_letters_total",
            "Records sent to the dead-letter topic",
            ["agent", "reason"],
            registry=registry,
        )
        self.dead_letter_retries = Counter(
            "banter_dead_letter_retries_total",
            "Dead letters the producer refused, each try (then retried)",
            ["agent"],
            registry=registry,
        )
        self.handler_errors = Counter(
            "banter_handler_errors_total",
            "Input records whose handling raised (each one dead-lettered)",
            ["agent", "error"],
            registry=registry,
        )
        self.late_outputs = Counter(
            "banter_late_outputs_total",
            "Model outputs that arrived after the reply",
            ["model"],
            registry=registry,
        )
        self.input_gaps = Counter(
            "banter_input_gaps_total",
            "Runs of input records faust skipped, read back from Kafka",
            ["agent", "found_by"],
            registry=registry,
        )
        self.input_gap_records = Counter(
            "banter_input_gap_records_total",
            "Input records faust skipped, read back and handled",
            ["agent"],
            registry=registry,
        )
        self.pending = Gauge(
            "banter_router_pending", "Messages waiting for their reply in this worker", registry=registry
        )
        self.consumer_lag = Gauge(
            "banter_consumer_lag_messages",
            "Records not yet read, summed over assigned partitions",
            ["topic"],
            registry=registry,
        )
        self.loop_lag = Gauge(
            "banter_event_loop_lag_seconds", "How late the event loop runs a 100 ms timer", registry=registry
        )
        self.budget = Gauge(
            "banter_budget_seconds", "Default latency budget per message (BANTER_BUDGET_MS)", registry=registry
        )
        self.degradation = Gauge(
            "banter_generator_degradation_level",
            "0 normal, 1 cheaper settings, 2 skipped",
            registry=registry,
        )


class GatewayMetrics:
    """The HTTP gateway's metrics (``banter gateway`` serves them at ``/metrics``); routes are templates."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "banter_gateway_requests_total",
            "HTTP requests by route template and status",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "banter_gateway_request_latency_seconds",
            "Time to answer an HTTP request (a POST includes its wait)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.messages = Counter(
            "banter_gateway_messages_total",
            "POSTed messages: answered (200), pending (202), retried (not produced)",
            ["outcome"],
            registry=registry,
        )
        self.webhooks = Counter(
            "banter_gateway_webhooks_total",
            "Webhook deliveries: delivered, failed (after every retry)",
            ["outcome"],
            registry=registry,
        )
        self.remembered = Gauge(
            "banter_gateway_remembered_messages", "Messages the gateway remembers", registry=registry
        )
