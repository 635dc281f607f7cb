"""The HTTP gateway (``banter gateway``): chat platforms that do not speak Kafka POST
messages here and get the reply back, correlated by message_id.

Routes: ``POST /v1/messages``, ``GET /v1/messages/{id}``, ``GET /v1/conversations/{id}``,
``GET /openapi.json`` (generated from ``schemas.http``, see ``schemas.contract``), the
web chat at ``GET /chat`` and Prometheus metrics at ``GET /metrics``. Every error is a
JSON ``ErrorBody`` with a reason; a bug answers 500 with no stack trace (the trace goes
to the log).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from schemas import Message, SchemaError, decode
from schemas.contract import MAX_WAIT_MS, openapi
from schemas.http import Conversation, ErrorBody, ErrorDetail, MessageRequest
from streams.gateway_kafka import Relay
from streams.gateway_state import Conflict, Conversations, Entry, Ledger, RateLimits
from streams.metrics import GatewayMetrics
from streams.settings import Settings
from streams.webhooks import Webhooks

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ENCODER = msgspec.json.Encoder()
_FIELD_IS_DETAIL = {"missing_field", "empty_field", "field_too_long"}
_TEXT_REASONS = {"empty_text", "text_too_long"}
_PATH_REASONS = {"wrong_type", "bad_value"}  # their detail is "<field path>: <problem>"
PLATFORM = web.RequestKey("platform", str)  # the token's platform; "" on an open gateway
_HTTP_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class ApiError(Exception):
    """An answer other than 2xx, with its machine-readable reason."""

    def __init__(
        self, status: int, reason: str, detail: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.body = ErrorBody(ErrorDetail(status, reason, detail, field))
        self.headers = headers or {}


class Gateway:
    """The routes and their state; ``relay`` is the Kafka side (started apart, see ``serve``)."""

    def __init__(
        self, settings: Settings, relay_factory: Callable[..., Relay] = Relay, registry: CollectorRegistry | None = None
    ) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics(registry or CollectorRegistry())
        self.tokens = settings.gateway_token_map()
        self.ledger = Ledger(settings.gateway_remember)
        self.conversations = Conversations(settings.gateway_conversations, settings.gateway_history_turns)
        self.limits = RateLimits(settings.gateway_rate_per_s, settings.gateway_burst)
        self.webhooks = Webhooks(
            settings.gateway_webhook_map(),
            self.tokens,
            on_outcome=lambda outcome: self.metrics.webhooks.labels(outcome).inc(),
        )
        self.relay = relay_factory(settings, self.ledger, self.conversations, self._replied)

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=self.settings.gateway_max_body_bytes,
            middlewares=[self._measured, _errors, self._authorised],
        )
        app.router.add_post("/v1/messages", self.post_message)
        app.router.add_get("/v1/messages/{message_id}", self.get_message)
        app.router.add_get("/v1/conversations/{conversation_id}", self.get_conversation)
        app.router.add_get("/openapi.json", self.openapi)
        app.router.add_get("/chat", self.chat)
        app.router.add_get("/healthz", self.health)
        app.router.add_get("/metrics", self.prometheus)
        return app

    @web.middleware
    async def _measured(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        self.metrics.requests.labels(route, str(response.status)).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - started)
        return response

    @web.middleware
    async def _authorised(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """/v1/ needs a platform's token (unless none is configured), then a token from its bucket."""
        if not request.path.startswith("/v1/"):
            return await handler(request)
        platform = self._platform_of(request.headers.get("Authorization", ""))
        request[PLATFORM] = platform or ""
        wait_s = self.limits.take(platform or f"ip:{request.remote}")
        if wait_s > 0:
            raise ApiError(
                429,
                "rate_limited",
                "over this token's request rate",
                headers={"Retry-After": str(max(1, round(wait_s + 0.5)))},
            )
        return await handler(request)

    def _platform_of(self, authorization: str) -> str | None:
        """The token's platform; None when no tokens are configured (an open gateway)."""
        if not self.tokens:
            return None
        scheme, _, offered = authorization.partition(" ")
        found = None
        for platform, token in self.tokens.items():  # every token compared, in constant time each
            if hmac.compare_digest(offered.strip().encode(), token.encode()) and scheme.lower() == "bearer":
                found = platform
        if found is None:
            raise ApiError(
                401,
                "unauthorized",
                "send 'Authorization: Bearer <your platform token>'",
                headers={"WWW-Authenticate": 'Bearer realm="banter"'},
            )
        return found

    async def post_message(self, request: web.Request) -> web.Response:
        message = self._message(await request.read(), request[PLATFORM])
        wait_ms = min(
            _wait_ms(request.query.get("wait_ms"), self.settings.gateway_wait_ms), self.settings.gateway_max_wait_ms
        )
        try:
            entry, new = self.ledger.admit(message)
        except Conflict:
            raise ApiError(
                409, "message_id_reused", "this message_id was sent with a different body", "message_id"
            ) from None
        await self._produced(entry, message, new)
        if not new:
            self.metrics.messages.labels("retried").inc()
        if entry.reply is None and wait_ms > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(entry.answered.wait(), wait_ms / 1000)
        if entry.reply is None:
            entry.push = True  # the reply, when it comes, goes to the webhook (if the platform has one)
            headers = {"Location": f"/v1/messages/{message.message_id}"}
            self.metrics.messages.labels("pending").inc()
            return _json(entry.status(), 202, headers)
        self.metrics.messages.labels("answered").inc()
        return _json(entry.status(), 200)

    def _message(self, body: bytes, platform: str) -> Message:
        try:
            request = decode(body, MessageRequest)
            if platform and request.platform not in (None, platform):
                raise ApiError(403, "wrong_platform", f"this token is for platform {platform!r}", "platform")
            message = Message(
                message_id=request.message_id if request.message_id is not None else uuid.uuid4().hex,
                conversation_id=request.conversation_id,
                user_id=request.user_id,
                platform=request.platform or platform or "web",
                text=request.text,
                sent_at=request.sent_at if request.sent_at is not None else time.time(),
            )
            message.check()
        except SchemaError as exc:
            raise ApiError(400, exc.reason, exc.detail or exc.reason, _field_of(exc)) from None
        return message

    async def _produced(self, entry: Entry, message: Message, new: bool) -> None:
        """Produce a new message once; a retry waits for the first attempt's outcome."""
        if new:
            entry.produced = asyncio.get_running_loop().create_future()
            try:
                await self.relay.produce(message)
            except Exception as exc:
                self.ledger.forget(message.message_id)
                entry.produced.set_exception(exc)
                entry.produced.exception()  # retrieved: nobody else may be waiting
                log.warning("produce failed", extra={"error": type(exc).__name__})
                raise ApiError(503, "kafka_unavailable", "the message was not produced; retry the same body") from None
            entry.produced.set_result(None)
        elif entry.produced is not None:
            try:
                await asyncio.shield(entry.produced)
            except Exception:
                raise ApiError(503, "kafka_unavailable", "the message was not produced; retry the same body") from None

    def _replied(self, entry: Entry) -> None:
        """A reply was read: push it to the platform's webhook if its POST answered 202."""
        if entry.push and self.webhooks.wants(entry.platform):
            self.webhooks.push(entry.platform, _ENCODER.encode(entry.status()))

    async def get_message(self, request: web.Request) -> web.Response:
        entry = self.ledger.get(request.match_info["message_id"])
        if entry is None or request[PLATFORM] not in ("", entry.platform):
            raise ApiError(404, "unknown_message", "no such message_id here (never seen, or forgotten)")
        return _json(entry.status(), 200)

    async def get_conversation(self, request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversation_id"]
        turns = self.conversations.recent(conversation_id, request[PLATFORM] or None)
        if not turns:
            raise ApiError(404, "unknown_conversation", "no turns of this conversation seen here")
        return _json(Conversation(conversation_id, turns), 200)

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(openapi())

    async def chat(self, request: web.Request) -> web.Response:
        page = resources.files("streams").joinpath("web/chat.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html")

    async def prometheus(self, request: web.Request) -> web.Response:
        self.metrics.remembered.set(len(self.ledger))
        response = web.Response(body=generate_latest(self.metrics.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "remembered": len(self.ledger)})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure as a JSON ErrorBody; a bug's trace goes to the log, never to the caller."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _json(exc.body, exc.body.error.status, exc.headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = _HTTP_REASONS.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None  # a 405 lists what is allowed
        return _json(ErrorBody(ErrorDetail(exc.status, reason, exc.reason)), exc.status, headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("gateway bug", extra={"path": request.path})
        return _json(ErrorBody(ErrorDetail(500, "internal", "internal error; it was logged")), 500)


def _json(body: msgspec.Struct, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_ENCODER.encode(body), status=status, headers=headers, content_type="application/json")


def _field_of(exc: SchemaError) -> str | None:
    """The request field a SchemaError is about, or None for the body as a whole."""
    if exc.reason in _FIELD_IS_DETAIL:
        return exc.detail
    if exc.reason in _TEXT_REASONS:
        return "text"
    if exc.reason not in _PATH_REASONS:
        return None
    path, sep, _ = exc.detail.partition(": ")
    return path if sep and path != "top level" else None


def _wait_ms(raw: str | None, default: float) -> float:
    """``?wait_ms=``: a number of milliseconds from 0 to MAX_WAIT_MS, else a 400."""
    if raw is None:
        return default
    try:
        wait = float(raw)
    except ValueError:
        wait = float("nan")
    if not 0 <= wait <= MAX_WAIT_MS:  # NaN fails too
        raise ApiError(400, "bad_value", f"wait_ms must be a number from 0 to {MAX_WAIT_MS}", "wait_ms")
    return wait


async def serve(settings: Settings, ready: Callable[[str], None] | None = None) -> None:
    """Run the gateway until SIGTERM or SIGINT: Kafka first, then HTTP; stop in reverse."""
    gateway = Gateway(settings)
    await gateway.relay.start()
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
    await site.start()
    url = f"http://{settings.gateway_host}:{settings.gateway_port}"
    log.info("gateway listening", extra={"url": url, "platforms": sorted(gateway.tokens), "open": not gateway.tokens})
    if ready is not None:
        ready(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await gateway.webhooks.close()
        await gateway.relay.stop()


def run(settings: Settings, progress: Callable[[str], Any]) -> int:
    """``banter gateway``."""
    import logging.config

    from streams.kafka import ensure_topics
    from streams.logs import logging_config

    logging.config.dictConfig(logging_config(settings.log_level, settings.log_text))
    asyncio.run(ensure_topics(settings))
    if not settings.gateway_token_map():
        progress("no BANTER_GATEWAY_TOKENS: the gateway takes requests without a token (local use only)")
    asyncio.run(serve(settings, lambda url: progress(f"gateway on {url} (chat: {url}/chat)")))
    return 0
