"""The gateway's HTTP behaviour, with an in-memory stand-in for its Kafka side
(``tests/integration/test_gateway.py`` runs it against the real broker)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas import Message, Reply, contract
from streams.gateway import Gateway
from streams.gateway_state import Conversations, Entry, Ledger
from streams.settings import Settings

TOKENS = "web=web-secret-1,app=app-secret-2"
WEB = {"Authorization": "Bearer web-secret-1"}


class MemoryRelay:
    """Takes messages like Kafka would; ``answer_after`` (seconds) makes the pipeline reply."""

    def __init__(
        self, settings: Settings, ledger: Ledger, conversations: Conversations, on_reply: Callable[[Entry], None]
    ) -> None:
        self.ledger, self.on_reply = ledger, on_reply
        self.produced: list[Message] = []
        self.answer_after: float | None = 0.01
        self.fail = False

    async def produce(self, message: Message) -> None:
        await asyncio.sleep(0.01)
        if self.fail:
            raise ConnectionError("no broker")
        self.produced.append(message)
        if self.answer_after is not None:
            asyncio.get_running_loop().call_later(self.answer_after, self.reply, message)

    def reply(self, message: Message) -> None:
        answer = Reply(
            message.message_id,
            message.conversation_id,
            message.user_id,
            message.platform,
            f"re: {message.text}",
            "canned",
            "greeting",
            12.0,
            2.0,
        )
        entry = self.ledger.saw_reply(answer)
        if entry is not None:
            self.on_reply(entry)


def settings(**env: str) -> Settings:
    return Settings.from_env({"BANTER_GATEWAY_TOKENS": TOKENS, "BANTER_GATEWAY_WAIT_MS": "500", **env})


@pytest.fixture
async def make_client() -> AsyncIterator[Callable[..., Any]]:
    clients: list[TestClient] = []

    async def make(**env: str) -> tuple[TestClient, Gateway]:
        gateway = Gateway(settings(**env), relay_factory=MemoryRelay)  # type: ignore[arg-type]
        client = TestClient(TestServer(gateway.app()))
        await client.start_server()
        clients.append(client)
        return client, gateway

    yield make
    for client in clients:
        await client.close()


def body(**changes: Any) -> dict[str, Any]:
    return {"conversation_id": "c1", "user_id": "u1", "text": "hello there", **changes}


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    data = await response.json()
    assert set(data) == {"error"} and data["error"]["status"] == status
    return dict(data["error"])


async def test_a_reply_within_the_wait_is_answered_with_200(make_client: Any) -> None:
    client, gateway = await make_client()
    response = await client.post("/v1/messages", json=body(message_id="m-1"), headers=WEB)
    assert response.status == 200
    data = await response.json()
    assert data["status"] == "answered" and data["message_id"] == "m-1"
    assert data["reply"]["text"] == "re: hello there"
    (produced,) = gateway.relay.produced
    assert produced.platform == "web" and produced.conversation_id == "c1"


async def test_no_reply_within_the_wait_is_202_then_get_finds_it(make_client: Any) -> None:
    client, gateway = await make_client(BANTER_GATEWAY_WAIT_MS="20")
    gateway.relay.answer_after = None
    response = await client.post("/v1/messages", json=body(message_id="m-2"), headers=WEB)
    assert response.status == 202
    assert response.headers["Location"] == "/v1/messages/m-2"
    assert (await response.json())["status"] == "pending"
    assert (await (await client.get("/v1/messages/m-2", headers=WEB)).json())["status"] == "pending"
    gateway.relay.reply(gateway.relay.produced[0])
    answered = await (await client.get("/v1/messages/m-2", headers=WEB)).json()
    assert answered["status"] == "answered" and answered["reply"]["message_id"] == "m-2"


async def test_wait_ms_zero_answers_at_once(make_client: Any) -> None:
    client, gateway = await make_client()
    gateway.relay.answer_after = 0.2
    response = await client.post("/v1/messages?wait_ms=0", json=body(), headers=WEB)
    assert response.status == 202


async def test_a_retry_by_message_id_is_produced_once(make_client: Any) -> None:
    client, gateway = await make_client()
    gateway.relay.answer_after = 0.05
    first, second = await asyncio.gather(
        client.post("/v1/messages", json=body(message_id="same"), headers=WEB),
        client.post("/v1/messages", json=body(message_id="same"), headers=WEB),
    )
    third = await client.post("/v1/messages", json=body(message_id="same"), headers=WEB)
    assert [first.status, second.status, third.status] == [200, 200, 200]
    assert len(gateway.relay.produced) == 1
    conflict = await client.post("/v1/messages", json=body(message_id="same", text="other"), headers=WEB)
    assert (await error_of(conflict, 409))["field"] == "message_id"


async def test_a_message_kafka_refused_is_503_and_can_be_retried(make_client: Any) -> None:
    client, gateway = await make_client()
    gateway.relay.fail = True
    response = await client.post("/v1/messages", json=body(message_id="r"), headers=WEB)
    assert (await error_of(response, 503))["reason"] == "kafka_unavailable"
    gateway.relay.fail = False
    assert (await client.post("/v1/messages", json=body(message_id="r"), headers=WEB)).status == 200
    assert len(gateway.relay.produced) == 1


@pytest.mark.parametrize(
    ("payload", "reason", "field"),
    [
        (b"{not json", "invalid_json", None),
        (b"[1, 2]", "not_an_object", None),
        (json.dumps({"conversation_id": "c", "user_id": "u"}).encode(), "missing_field", "text"),
        (json.dumps(body(text="   ")).encode(), "empty_text", "text"),
        (json.dumps(body(text="x" * 4001)).encode(), "text_too_long", "text"),
        (json.dumps(body(text=42)).encode(), "wrong_type", "text"),
        (json.dumps(body(sent_at="noon")).encode(), "wrong_type", "sent_at"),
        (json.dumps(body(conversation_id="")).encode(), "empty_field", "conversation_id"),
        (json.dumps(body(user_id="u" * 201)).encode(), "field_too_long", "user_id"),
        (json.dumps(body(message_id="")).encode(), "empty_field", "message_id"),
    ],
)
async def test_a_bad_body_is_400_with_the_field_and_the_reason(
    make_client: Any, payload: bytes, reason: str, field: str | None
) -> None:
    client, gateway = await make_client()
    response = await client.post("/v1/messages", data=payload, headers={**WEB, "Content-Type": "application/json"})
    error = await error_of(response, 400)
    assert (error["reason"], error["field"]) == (reason, field)
    assert "Traceback" not in error["detail"]
    assert gateway.relay.produced == []


async def test_rfc3339_sent_at_and_unknown_fields_are_accepted(make_client: Any) -> None:
    client, gateway = await make_client()
    payload = body(sent_at="2026-11-30T12:00:00+01:00", client_version="9.9")
    assert (await client.post("/v1/messages", json=payload, headers=WEB)).status == 200
    assert gateway.relay.produced[0].sent_at == 1_796_036_400.0


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic web-secret-1", "Bearer web-secret-1x", ""])
async def test_no_or_a_wrong_token_is_401(make_client: Any, authorization: str | None) -> None:
    client, gateway = await make_client()
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post("/v1/messages", json=body(), headers=headers)
    assert (await error_of(response, 401))["reason"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.get("/v1/messages/x", headers=headers)).status == 401
    assert gateway.relay.produced == []


async def test_a_token_speaks_for_its_own_platform_only(make_client: Any) -> None:
    client, _ = await make_client()
    response = await client.post("/v1/messages", json=body(platform="app", message_id="p"), headers=WEB)
    assert (await error_of(response, 403))["field"] == "platform"
    app = {"Authorization": "Bearer app-secret-2"}
    assert (await client.post("/v1/messages", json=body(message_id="mine"), headers=app)).status == 200
    assert (await client.get("/v1/messages/mine", headers=app)).status == 200
    assert (await client.get("/v1/messages/mine", headers=WEB)).status == 404  # another platform's message


async def test_tokens_never_reach_the_logs(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client, gateway = await make_client()
    gateway.relay.fail = True
    await client.post("/v1/messages", json=body(), headers=WEB)
    await client.post("/v1/messages", json=body(), headers={"Authorization": "Bearer app-secret-2-wrong"})
    for token in ("web-secret-1", "app-secret-2"):
        assert token not in caplog.text
        assert token not in repr(gateway.settings) and token not in str(gateway.settings.describe())


async def test_a_body_over_the_limit_is_413(make_client: Any) -> None:
    client, gateway = await make_client(BANTER_GATEWAY_MAX_BODY_BYTES="1024")
    response = await client.post("/v1/messages", json=body(text="x" * 2000), headers=WEB)
    assert (await error_of(response, 413))["reason"] == "body_too_large"
    assert gateway.relay.produced == []


async def test_over_the_rate_a_token_gets_429_with_retry_after(make_client: Any) -> None:
    client, _ = await make_client(BANTER_GATEWAY_RATE_PER_S="0.5", BANTER_GATEWAY_BURST="3")
    statuses = [(await client.get("/v1/messages/nope", headers=WEB)).status for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    limited = await client.get("/v1/messages/nope", headers=WEB)
    assert (await error_of(limited, 429))["reason"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    other = await client.get("/v1/messages/nope", headers={"Authorization": "Bearer app-secret-2"})
    assert other.status == 404  # another token has its own bucket


async def test_conversation_history_has_both_sides(make_client: Any) -> None:
    client, gateway = await make_client()
    from schemas.http import ConversationTurn

    gateway.conversations.add("c1", "web", ConversationTurn("user", "hello there", "m1", 1.0))
    gateway.conversations.add("c1", "web", ConversationTurn("bot", "hey", "m1", 1.2, "canned"))
    data = await (await client.get("/v1/conversations/c1", headers=WEB)).json()
    assert [(t["speaker"], t["text"]) for t in data["turns"]] == [("user", "hello there"), ("bot", "hey")]
    assert (await error_of(await client.get("/v1/conversations/nobody", headers=WEB), 404))["reason"]


async def test_unknown_routes_and_methods_are_json_errors(make_client: Any) -> None:
    client, _ = await make_client()
    assert (await error_of(await client.get("/nothing/here"), 404))["reason"] == "not_found"
    assert (await error_of(await client.delete("/v1/messages", headers=WEB), 405))["reason"] == "method_not_allowed"


async def test_a_bug_is_a_500_without_a_stack_trace(make_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    client, gateway = await make_client()

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug with a secret inside")

    gateway.ledger.admit = broken
    response = await client.post("/v1/messages", json=body(), headers=WEB)
    error = await error_of(response, 500)
    assert error["reason"] == "internal" and "bug" not in error["detail"]
    assert "RuntimeError" in caplog.text  # the trace is in the log


async def test_openapi_and_the_chat_page_are_served_without_a_token(make_client: Any) -> None:
    client, _ = await make_client()
    assert await (await client.get("/openapi.json")).json() == contract.openapi()
    page = await client.get("/chat")
    assert page.status == 200 and page.content_type == "text/html"
    assert "/v1/messages" in await page.text()


async def test_an_open_gateway_takes_requests_without_a_token(make_client: Any) -> None:
    client, gateway = await make_client(BANTER_GATEWAY_TOKENS="")
    response = await client.post("/v1/messages", json=body(platform="kiosk"), headers={})
    assert response.status == 200
    assert gateway.relay.produced[0].platform == "kiosk"


async def test_metrics_count_requests_by_route_template(make_client: Any) -> None:
    client, _ = await make_client()
    await client.post("/v1/messages", json=body(message_id="metric-1"), headers=WEB)
    await client.post("/v1/messages", json=body(message_id="metric-1"), headers=WEB)
    await client.get("/v1/messages/metric-1", headers=WEB)
    await client.get("/v1/messages/another", headers=WEB)
    text = await (await client.get("/metrics")).text()
    assert 'banter_gateway_requests_total{route="/v1/messages",status="200"} 2.0' in text
    assert 'banter_gateway_requests_total{route="/v1/messages/{message_id}",status="404"} 1.0' in text
    assert 'banter_gateway_messages_total{outcome="retried"} 1.0' in text
    assert "banter_gateway_remembered_messages 1.0" in text
    assert "metric-1" not in text and "another" not in text  # no ids in labels


@pytest.mark.parametrize("wait_ms", ["-1", "30001", "soon", "nan"])
async def test_a_bad_wait_is_400_and_nothing_is_produced(make_client: Any, wait_ms: str) -> None:
    client, gateway = await make_client()
    response = await client.post(f"/v1/messages?wait_ms={wait_ms}", json=body(), headers=WEB)
    assert (await error_of(response, 400))["field"] == "wait_ms"
    assert gateway.relay.produced == []


async def test_the_wait_is_capped_by_the_gateway(make_client: Any) -> None:
    client, gateway = await make_client(BANTER_GATEWAY_MAX_WAIT_MS="20")
    gateway.relay.answer_after = 1.0
    started = asyncio.get_running_loop().time()
    response = await client.post("/v1/messages?wait_ms=30000", json=body(), headers=WEB)
    assert response.status == 202
    assert asyncio.get_running_loop().time() - started < 0.9
