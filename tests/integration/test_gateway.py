"""The HTTP gateway against the real broker: with a real worker behind it (reply, event,
history, idempotent retries), alone (202, a signed webhook retried, a restart that reads
back), fuzzed by schemathesis from its own OpenAPI document, and the web chat in
headless Chromium."""

from __future__ import annotations

import asyncio
import http.server
import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import Message, Reply, decode, encode
from streams.process import ROOT
from streams.settings import Settings
from streams.webhooks import HEADER, verify
from tests.integration.conftest import Worker, Workers
from tests.integration.gateway_io import GatewayProcess, call, start_gateway
from tests.integration.kafka_io import produce, read_topic

TOKEN = "web-token-for-tests"
TOKENS = f"web={TOKEN},other=other-token-for-tests"


class Stack:
    def __init__(self, worker: Worker, gateway: GatewayProcess) -> None:
        self.worker, self.gateway = worker, gateway
        self.settings = worker.settings

    def post(self, body: dict[str, Any], wait_ms: int = 30_000) -> tuple[int, dict[str, Any], dict[str, str]]:
        return call("POST", f"{self.gateway.url}/v1/messages?wait_ms={wait_ms}", body, TOKEN)

    def get(self, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        return call("GET", f"{self.gateway.url}{path}", token=TOKEN)


@pytest.fixture(scope="module")
def stack(base_env: dict[str, str], built_models: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker and one gateway on the module's own topics."""
    logs = tmp_path_factory.mktemp("gateway-stack")
    workers = Workers(base_env, logs)
    worker = workers()
    gateway = None
    try:
        worker.wait_ready()
        gateway = start_gateway(worker.env, logs, BANTER_GATEWAY_TOKENS=TOKENS)
        yield Stack(worker, gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        workers.stop_all()


def until(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.2)
        value = fetch()
    return value


def records_of(settings: Settings, topic: str, message_id: str, kind: type, wait_s: float = 3.0) -> list[Any]:
    records = asyncio.run(read_topic(settings, topic, lambda rs: False, wait_s))
    return [r for r in records if decode(r.value, kind).message_id == message_id]


def test_a_platform_posts_and_gets_the_reply_its_event_and_the_history(stack: Stack) -> None:
    conversation = f"gw-{uuid.uuid4().hex[:8]}"
    body = {
        "conversation_id": conversation,
        "user_id": "u1",
        "text": "what's the weather like today?",
        "message_id": f"m-{uuid.uuid4().hex}",
        "sent_at": "2026-11-30T12:00:00Z",
        "client": "future field",
    }
    status, data, _ = stack.post(body)
    assert status == 200, data
    assert data["status"] == "answered" and data["message_id"] == body["message_id"]
    reply = data["reply"]
    assert reply["text"].strip() and reply["conversation_id"] == conversation and reply["platform"] == "web"

    status, data, _ = until(lambda: stack.get(f"/v1/messages/{body['message_id']}"), lambda r: r[1].get("event"), 30)
    assert status == 200 and data["event"], data
    assert {c["model"] for c in data["event"]["candidates"]} >= {"intent", "responder"}
    assert data["reply"] == reply

    status, history, _ = stack.get(f"/v1/conversations/{conversation}")
    assert status == 200
    assert [(t["speaker"], t["text"]) for t in history["turns"]] == [("user", body["text"]), ("bot", reply["text"])]

    (produced,) = records_of(stack.settings, "messages", body["message_id"], Message)
    assert produced.key == conversation.encode()
    assert decode(produced.value, Message).sent_at == 1_796_040_000.0


def test_a_retry_by_message_id_is_produced_once_and_answered_alike(stack: Stack) -> None:
    body = {
        "conversation_id": f"gw-{uuid.uuid4().hex[:8]}",
        "user_id": "u2",
        "text": "tell me a joke",
        "message_id": f"retry-{uuid.uuid4().hex}",
    }
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: stack.post(body), range(4)))
    assert [status for status, _, _ in answers] == [200] * 4, answers
    assert len({json.dumps(data["reply"], sort_keys=True) for _, data, _ in answers}) == 1
    status, again, _ = stack.post(body)
    assert status == 200 and again["reply"] == answers[0][1]["reply"]
    assert len(records_of(stack.settings, "messages", body["message_id"], Message)) == 1
    status, error, _ = stack.post({**body, "text": "something else"})
    assert status == 409 and error["error"]["field"] == "message_id"


def test_a_message_produced_straight_to_kafka_can_be_read_through_the_gateway(stack: Stack) -> None:
    message_id = f"kafka-{uuid.uuid4().hex}"
    value = orjson.dumps(
        {
            "message_id": message_id,
            "conversation_id": "straight",
            "user_id": "u3",
            "platform": "web",
            "text": "hello from kcat",
            "sent_at": "2026-11-30T12:00:00+00:00",
            "schema_version": 1,
            "shiny_new_field": True,
        }
    )
    asyncio.run(produce(stack.settings, [(b"straight", value)]))
    status, data, _ = until(
        lambda: stack.get(f"/v1/messages/{message_id}"), lambda r: r[0] == 200 and r[1]["status"] == "answered", 60
    )
    assert status == 200 and data["reply"]["message_id"] == message_id, data


class Hooks(http.server.ThreadingHTTPServer):
    """A platform's webhook endpoint: answers 500 to its first call, 204 after."""

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, str]] = []
        super().__init__(("127.0.0.1", 0), _HookHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/banter"


class _HookHandler(http.server.BaseHTTPRequestHandler):
    server: Hooks

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.calls.append((body, self.headers.get(HEADER, "")))
        self.send_response(500 if len(self.server.calls) == 1 else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    server = Hooks()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def lone_env(base_env: dict[str, str]) -> dict[str, str]:
    """Settings for gateways with no worker behind them, on their own topics."""
    prefix = f"g{uuid.uuid4().hex[:8]}"
    return {**base_env, "BANTER_TOPIC_PREFIX": prefix, "BANTER_GATEWAY_TOKENS": TOKENS}


def test_a_late_reply_goes_to_the_webhook_signed_and_a_restarted_gateway_reads_it_back(
    lone_env: dict[str, str], hooks: Hooks, tmp_path: Path
) -> None:
    gateway = start_gateway(lone_env, tmp_path, BANTER_GATEWAY_WEBHOOKS=f"web={hooks.url}")
    try:
        body = {"conversation_id": "hook-c", "user_id": "u", "text": "anyone there?", "message_id": "hook-1"}
        status, data, headers = call("POST", f"{gateway.url}/v1/messages?wait_ms=0", body, TOKEN)
        assert status == 202 and data["status"] == "pending" and headers["Location"] == "/v1/messages/hook-1"
        settings = Settings.from_env(lone_env)
        reply = Reply("hook-1", "hook-c", "u", "web", "I am, sadly", "retrieval", "greeting", 900.0, time.time())
        asyncio.run(produce(settings, [(b"hook-c", encode(reply))], topic="replies"))  # the router's part
        until(lambda: len(hooks.calls), lambda n: n >= 2, 30)
        assert len(hooks.calls) == 2, "the first delivery got a 500 and was retried"
        for payload, signature in hooks.calls:
            assert verify(signature, payload, TOKEN)
            pushed = json.loads(payload)
            assert pushed["status"] == "answered" and pushed["reply"]["text"] == "I am, sadly"
        assert call("GET", f"{gateway.url}/v1/messages/hook-1", token=TOKEN)[1]["status"] == "answered"
    finally:
        gateway.stop()
    again = start_gateway(lone_env, tmp_path)  # a fresh process reads the last minutes back
    try:
        status, data, _ = until(
            lambda: call("GET", f"{again.url}/v1/messages/hook-1", token=TOKEN), lambda r: r[0] == 200, 15
        )
        assert status == 200 and data["reply"]["text"] == "I am, sadly"
        status, data, _ = call("POST", f"{again.url}/v1/messages?wait_ms=0", body, TOKEN)
        assert status == 200, "a retry after the restart is answered from what was read back, not produced"
        records = asyncio.run(read_topic(settings, "messages", lambda rs: False, 2.0))
        assert len(records) == 1
    finally:
        again.stop()


def test_the_gateway_process_refuses_what_it_must(lone_env: dict[str, str], tmp_path: Path) -> None:
    gateway = start_gateway(lone_env, tmp_path, BANTER_GATEWAY_MAX_BODY_BYTES="2048")
    try:
        url = f"{gateway.url}/v1/messages"
        body = {"conversation_id": "c", "user_id": "u", "text": "hi"}
        assert call("POST", url, body)[0] == 401
        assert call("POST", url, body, "web-token-for-tests-but-wrong")[0] == 401
        status, error, _ = call("POST", url, {**body, "text": "x" * 5000}, TOKEN)
        assert (status, error["error"]["reason"]) == (413, "body_too_large")
        status, error, _ = call("POST", url, {**body, "sent_at": "noon"}, TOKEN)
        assert (status, error["error"]["reason"], error["error"]["field"]) == (400, "wrong_type", "sent_at")
    finally:
        gateway.stop()
    assert TOKEN not in gateway.log_path.read_text()


def test_schemathesis_finds_nothing_against_the_openapi_document(lone_env: dict[str, str], tmp_path: Path) -> None:
    # no worker behind it: every POST waits its whole wait, then answers 202
    gateway = start_gateway(
        lone_env,
        tmp_path,
        BANTER_GATEWAY_MAX_WAIT_MS="50",
        BANTER_GATEWAY_RATE_PER_S="100000",
        BANTER_GATEWAY_BURST="100000",
    )
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{gateway.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--seed",
                "12",
                "--workers",
                "1",
                "--request-timeout",
                "10",
                "--output-sanitize",
                "true",
                "--report",
                "junit",
                "--report-dir",
                str(tmp_path / "schemathesis"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        gateway.stop()
    print(run.stdout[-3000:])
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    assert "gateway bug" not in gateway.log_path.read_text(), "a request raised inside the gateway (see its log)"


def test_a_person_chats_in_headless_chromium(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("the browser test needs Debian's chromium: `make browser` (apt-get install chromium)")
    shot = tmp_path_factory.getbasetemp() / "chat.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"{stack.gateway.url}/chat")
            page.fill("#token", TOKEN)
            page.dispatch_event("#token", "change")
            for text, replies in (("hi there!", 1), ("what's the weather like in Paris?", 2)):
                page.fill("[data-testid=input]", text)
                page.press("[data-testid=input]", "Enter")
                page.wait_for_selector(f"[data-testid=reply] >> nth={replies - 1}", timeout=60_000)
                page.wait_for_selector(f"[data-testid=candidates] >> nth={replies - 1}", timeout=30_000)
            assert page.locator("[data-testid=error]").count() == 0
            last = page.locator("[data-testid=reply]").last
            assert last.locator(".bubble").inner_text().strip()
            assert last.locator("[data-testid=source]").inner_text() in {"canned", "retrieval", "generative"}
            assert last.locator("[data-testid=latency]").inner_text().endswith(" ms")
            assert last.locator("[data-testid=intent]").inner_text()
            assert last.locator("[data-testid=candidate]").count() >= 2
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    reports = ROOT / "reports"
    reports.mkdir(exist_ok=True)
    shutil.copy(shot, reports / "chat.png")
    print(f"screenshot of the web chat: {shot} (and {reports / 'chat.png'})")


def test_the_readme_kcat_commands_produce_and_consume(stack: Stack) -> None:
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.fail("the README's kcat example needs Debian's kcat: `make browser` (apt-get install kcat)")
    settings, message_id = stack.settings, f"kcat-{uuid.uuid4().hex}"
    value = json.dumps(
        {
            "message_id": message_id,
            "conversation_id": "c42",
            "user_id": "u7",
            "platform": "web",
            "text": "hi there!",
            "sent_at": "2026-11-30T12:00:00Z",
        }
    )
    subprocess.run(
        [kcat, "-P", "-b", settings.bootstrap, "-t", settings.topic("messages"), "-K", "|"],
        input=f"c42|{value}\n",
        text=True,
        check=True,
        timeout=30,
    )

    def replies() -> str:
        read = [
            kcat,
            "-C",
            "-b",
            settings.bootstrap,
            "-t",
            settings.topic("replies"),
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k %s\n",
        ]
        return subprocess.run(read, capture_output=True, text=True, timeout=60).stdout

    out = until(replies, lambda text: message_id in text, 60)
    (line,) = [line for line in out.splitlines() if message_id in line]
    key, _, reply = line.partition(" ")
    assert key == "c42" and json.loads(reply)["message_id"] == message_id
