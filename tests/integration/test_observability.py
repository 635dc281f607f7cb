"""Observability checked by a real Prometheus: Debian's `prometheus` scrapes a real
worker with infra/prometheus's rules while traffic flows through Kafka; then its
HTTP API must show per-model latency quantiles for every model, counters that
rose by exactly what was sent, alert rules that loaded and evaluate, and data
for every panel of the Grafana dashboard in infra/grafana."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas import Message
from streams.client import connected, new_message
from streams.settings import Settings
from tests.integration.conftest import Workers
from tests.integration.kafka_io import produce, read_topic

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
GRAFANA_DIR = ROOT / "infra" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "banter.json"
MODELS = ("intent", "responder", "generator")
COUNTERS = ("banter_messages_total", "banter_replies_total", "banter_fallbacks_total", "banter_dead_letters_total")
SENT, TIGHT, GARBAGE = 30, 3, 2  # normal messages; on a 1 ms budget (each a fallback); undecodable bytes
TEXTS = (
    "hi there!",
    "what's the weather like today?",
    "I spent the whole weekend rebuilding an old bicycle with my grandfather",
    "do you think pineapples dream about being coconuts",
    "I love you so much",
    "the new neighbours play the trombone every night at eleven",
)
ALLOWED_LABELS = {
    "__name__",
    "job",
    "instance",
    "le",
    "model",
    "version",
    "stage",
    "source",
    "reason",
    "agent",
    "topic",
    "intent",
    "status",
}


class Prometheus:
    """A `prometheus` process on a free port, and the bits of its HTTP API the tests use."""

    def __init__(self, binary: str, workdir: Path, config: dict[str, Any]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        command = [
            binary,
            f"--config.file={config_path}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        pytest.fail(f"prometheus not ready within {timeout_s:.0f} s:\n{self.log_tail()}")

    def api(self, path: str, **params: str) -> Any:
        """``data`` of an API answer; a failed query fails the test with Prometheus's error."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        assert body["status"] == "success", f"{path} {params}: {body.get('errorType')}: {body.get('error')}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant vector query's series."""
        data = self.api("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", f"{expr}: {data['resultType']}"
        return list(data["result"])

    def value(self, expr: str) -> float:
        """The sum of an instant query's values; 0 when no series matches."""
        return sum(float(series["value"][1]) for series in self.query(expr))

    def wait_until(self, what: str, check: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not check():
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus: {what} not seen within {timeout_s:.0f} s")
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class Observed:
    """What the tests read: the running Prometheus, counters before and after traffic, /metrics."""

    prometheus: Prometheus
    before: dict[str, float]
    after: dict[str, float]
    probes: int
    messages: list[Message]
    metrics_text: str
    settings: Settings


def prometheus_binary() -> str:
    """Debian's `prometheus` on PATH; without it the test fails and names the fix (it never skips)."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the observability tests need Prometheus on PATH: apt-get install prometheus (`make test` does it)")
    return binary


def scrape_config_for(web_port: int) -> dict[str, Any]:
    """infra/prometheus/prometheus.yml with its rules, aimed at the test worker, scraping every second."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / path) for path in config["rule_files"]]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{web_port}"]}]
    return config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _counters(prometheus: Prometheus) -> dict[str, float]:
    return {name: prometheus.value(f"sum({name})") for name in COUNTERS}


async def send_traffic(settings: Settings) -> list[Message]:
    """SENT messages in waves and TIGHT ones on the 1 ms platform, each answered; then GARBAGE bytes."""
    normal = [new_message(TEXTS[i % len(TEXTS)], f"obs-{i}", platform="test") for i in range(SENT)]
    tight = [new_message(TEXTS[i % len(TEXTS)], f"obs-tight-{i}", platform="tight") for i in range(TIGHT)]
    async with connected(settings) as client:
        for start in range(0, SENT, 5):
            await asyncio.gather(*(client.ask(m, 60.0) for m in normal[start : start + 5]))
        replies = await asyncio.gather(*(client.ask(m, 60.0) for m in tight))
    assert all(reply.fallback_reason for reply in replies), [r.fallback_reason for r in replies]
    await produce(settings, [(b"obs-garbage", b"\xffnot a record") for _ in range(GARBAGE)])
    return normal + tight


def _read_metrics(web_port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=10) as response:
        return str(response.read().decode())


@pytest.fixture(scope="module")
def observed(
    base_env: dict[str, str], built_models: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    """One worker, one Prometheus, one round of traffic, shared by the tests of this module."""
    binary = prometheus_binary()
    workdir = tmp_path_factory.mktemp("observability")
    workers = Workers(base_env, workdir)
    prometheus: Prometheus | None = None
    try:
        # a late message waits for intent and retrieval by default; this worker answers the 1 ms platform at
        # its deadline instead, so that the fallback line and its metrics show up
        worker = workers(BANTER_BUDGET_MS="2000", BANTER_PLATFORM_BUDGETS_MS="tight=1", BANTER_LATE_WAIT_MS="0")
        worker.wait_ready(timeout_s=240)
        port = worker.settings.web_port
        prometheus = Prometheus(binary, workdir, scrape_config_for(port))
        prometheus.wait_ready()
        prom = prometheus
        probes = len(asyncio.run(read_topic(worker.settings, "messages", lambda rs: False, 3.0)))  # wait_ready's
        prom.wait_until("the probes' replies", lambda: prom.value("sum(banter_replies_total)") >= probes)
        before = _counters(prom)
        messages = asyncio.run(send_traffic(worker.settings))
        accepted = before["banter_replies_total"] + len(messages)
        prom.wait_until("every reply", lambda: prom.value("sum(banter_replies_total)") >= accepted)
        dead = before["banter_dead_letters_total"] + GARBAGE
        prom.wait_until("every dead letter", lambda: prom.value("sum(banter_dead_letters_total)") >= dead)
        settled = time.time() + 3  # a few scrapes after the last record, as a dashboard sees it
        prom.wait_until("scrapes after traffic", lambda: prom.value('timestamp(up{job="banter"})') >= settled)
        metrics_text = _read_metrics(port)
        (workdir / "metrics.txt").write_text(metrics_text)
        print(f"\n/metrics after traffic: {workdir / 'metrics.txt'}")
        yield Observed(prom, before, _counters(prom), probes, messages, metrics_text, worker.settings)
    finally:
        if prometheus is not None:
            prometheus.stop()
        workers.stop_all()


def test_every_model_has_latency_quantiles(observed: Observed) -> None:
    for quantile in (0.5, 0.95, 0.99):
        expr = f"histogram_quantile({quantile}, sum by (model, le) (rate(banter_model_latency_seconds_bucket[1m])))"
        seen = {s["metric"].get("model"): float(s["value"][1]) for s in observed.prometheus.query(expr)}
        assert set(MODELS) <= set(seen), f"p{quantile * 100:g}: models {sorted(seen)}"
        assert all(math.isfinite(seen[m]) and seen[m] > 0 for m in MODELS), (quantile, seen)
    versions = {s["metric"]["model"]: s["metric"]["version"] for s in observed.prometheus.query("banter_model_info")}
    assert set(MODELS) <= set(versions), versions


def test_counters_rose_by_the_amount_sent(observed: Observed) -> None:
    before, after, accepted = observed.before, observed.after, len(observed.messages)
    assert observed.probes >= 1
    assert before["banter_messages_total"] == before["banter_replies_total"] == observed.probes, before
    for name in ("banter_messages_total", "banter_replies_total"):
        assert after[name] - before[name] == accepted, (name, before[name], after[name])
        assert after[name] == accepted + observed.probes, (name, after[name])
    assert after["banter_dead_letters_total"] - before["banter_dead_letters_total"] == GARBAGE, (before, after)
    assert after["banter_fallbacks_total"] - before["banter_fallbacks_total"] >= TIGHT, (before, after)


def test_faust_sensor_shares_banters_registry_on_metrics(observed: Observed) -> None:
    for family in ("banter_model_latency_seconds_bucket", "banter_faust_messages_received_total"):
        assert f"\n{family}" in observed.metrics_text, family


def test_no_label_carries_a_conversation_user_or_text(observed: Observed) -> None:
    ours = '{__name__=~"banter_.+",__name__!~"banter_faust_.+"}'
    series = observed.prometheus.api("/api/v1/series", **{"match[]": ours})
    names = {label for labels in series for label in labels}
    assert names <= ALLOWED_LABELS, names - ALLOWED_LABELS
    values = {value for labels in series for value in labels.values()}
    private = {v for m in observed.messages for v in (m.conversation_id, m.user_id, m.text, m.message_id)}
    assert not values & private, values & private


def test_consumer_lag_covers_banters_topics_and_nothing_else(observed: Observed) -> None:
    lag = {s["metric"]["topic"] for s in observed.prometheus.query("banter_consumer_lag_messages")}
    assert observed.settings.topic("turns") in lag, lag
    assert all(topic.startswith(observed.settings.topic("")) for topic in lag), lag  # no changelogs


def test_alert_rules_load_and_evaluate_without_error(observed: Observed) -> None:
    prom = observed.prometheus
    wanted = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }

    def rules() -> list[dict[str, Any]]:
        return [rule for group in prom.api("/api/v1/rules")["groups"] for rule in group["rules"]]

    prom.wait_until("every rule evaluated", lambda: all(r["health"] != "unknown" for r in rules()) and bool(rules()))
    loaded = rules()
    assert {rule["name"] for rule in loaded} == wanted
    broken = {rule["name"]: rule.get("lastError") for rule in loaded if rule["health"] != "ok" or rule.get("lastError")}
    assert not broken, broken
    state = {rule["name"]: rule["state"] for rule in loaded}
    # every model is loaded and the worker is scraped: these must be quiet
    assert state["BanterModelNotLoaded"] == "inactive", state
    assert state["BanterWorkerDown"] == "inactive", state


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those folded inside rows."""
    panels: list[dict[str, Any]] = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return [panel for panel in panels if panel.get("type") != "row"]


def grafana_to_promql(expr: str) -> str:
    """A panel's expression with Grafana's interval variables filled in; any other variable is an error."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b|\$\{__(rate_interval|interval|range)\}", "1m", expr)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def test_the_dashboard_is_wired_to_the_provisioned_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    provisioned = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(provisioned.read_text())["datasources"]
    titles = {panel["title"] for panel in dashboard_panels(dashboard)}
    for wanted in (
        "Model latency p50",
        "Model latency p95",
        "Model latency p99",
        "Throughput",
        "Replies by source",
        "Fallbacks by reason",
        "Dead letters by reason",
        "Consumer lag",
        "Event-loop lag",
        "Model versions",
        "End-to-end latency",
    ):
        assert wanted in titles, wanted
    for panel in dashboard_panels(dashboard):
        assert panel["targets"], panel["title"]
        uids = {panel["datasource"]["uid"]} | {target["datasource"]["uid"] for target in panel["targets"]}
        assert uids == {source["uid"]}, (panel["title"], uids)


def test_every_dashboard_query_returns_data_after_traffic(observed: Observed) -> None:
    empty: list[str] = []
    for panel in dashboard_panels(json.loads(DASHBOARD.read_text())):
        for target in panel["targets"]:
            expr = grafana_to_promql(target["expr"])
            series = observed.prometheus.query(expr)  # an error fails here, naming the query
            if not any(math.isfinite(float(s["value"][1])) for s in series):
                empty.append(f"{panel['title']}: {expr}")
    assert not empty, "panels with no data after traffic:\n" + "\n".join(empty)


def test_prometheus_config_and_alert_unit_tests_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Prometheus: apt-get install prometheus"
    checks = [
        ["check", "config", "prometheus.yml"],
        ["check", "config", "prometheus.compose.yml"],
        ["test", "rules", "alerts_test.yml"],
    ]
    for check in checks:
        done = subprocess.run([promtool, *check], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
        assert done.returncode == 0, f"promtool {' '.join(check)}:\n{done.stdout}{done.stderr}"
