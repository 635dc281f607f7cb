"""Webhook signatures, and delivery retried with backoff against a real local HTTP server."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from streams.webhooks import HEADER, Webhooks, sign, verify


def test_a_signature_verifies_and_a_changed_body_does_not() -> None:
    header = sign(b'{"a": 1}', "secret", int(time.time()))
    assert verify(header, b'{"a": 1}', "secret")
    assert not verify(header, b'{"a": 2}', "secret")
    assert not verify(header, b'{"a": 1}', "another secret")


def test_a_stale_or_malformed_signature_does_not_verify() -> None:
    old = sign(b"x", "k", int(time.time()) - 3600)
    assert not verify(old, b"x", "k")
    assert not verify("v1=abc", b"x", "k")
    assert not verify("t=soon,v1=abc", b"x", "k")


class Receiver:
    """A platform's webhook endpoint that fails its first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[tuple[bytes, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.calls.append((await request.read(), request.headers.get(HEADER, "")))
        return web.Response(status=503 if len(self.calls) <= self.failures else 204)


@pytest.fixture
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Receiver, str]]:
    endpoint = Receiver(request.param)
    app = web.Application()
    app.router.add_post("/hook", endpoint.handle)
    server = TestServer(app)
    await server.start_server()
    yield endpoint, str(server.make_url("/hook"))
    await server.close()


@pytest.mark.parametrize("receiver", [2], indirect=True)
async def test_delivery_is_retried_until_it_succeeds_and_is_signed(receiver: tuple[Receiver, str]) -> None:
    endpoint, url = receiver
    hooks = Webhooks({"web": url}, {"web": "web-token"}, attempts=4, backoff_s=0.01)
    started = time.monotonic()
    assert await hooks.deliver("web", b'{"reply": 1}')
    await hooks.close()
    assert len(endpoint.calls) == 3
    assert time.monotonic() - started >= 0.01 + 0.02  # backoff doubles
    for body, header in endpoint.calls:
        assert body == b'{"reply": 1}' and verify(header, body, "web-token")
    assert hooks.delivered == 1 and hooks.failed == 0


@pytest.mark.parametrize("receiver", [100], indirect=True)
async def test_delivery_gives_up_after_its_attempts(receiver: tuple[Receiver, str]) -> None:
    endpoint, url = receiver
    hooks = Webhooks({"web": url}, {"web": "k"}, attempts=3, backoff_s=0.001)
    assert not await hooks.deliver("web", b"{}")
    await hooks.close()
    assert len(endpoint.calls) == 3 and hooks.failed == 1


async def test_an_unreachable_url_is_a_failed_attempt_not_a_crash() -> None:
    hooks = Webhooks({"web": "http://127.0.0.1:9/nothing"}, {}, attempts=2, backoff_s=0.001, timeout_s=1.0)
    assert not await hooks.deliver("web", b"{}")
    await hooks.close()
