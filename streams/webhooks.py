"""Reply webhooks: signed POSTs to a platform's URL, retried with exponential backoff.

The signature header is ``X-Banter-Signature: t=<unix seconds>,v1=<hex>``, where
``hex`` is HMAC-SHA256 over ``b"<t>." + body`` keyed by the platform's gateway
token. A platform checks it with ``verify()`` (or the same three lines in its own
language) and refuses a stale ``t``, so a captured call cannot be replayed later.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

import aiohttp

log = logging.getLogger(__name__)

HEADER = "X-Banter-Signature"


def sign(body: bytes, key: str, at: int) -> str:
    digest = hmac.new(key.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def verify(header: str, body: bytes, key: str, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``key`` and is at most ``tolerance_s`` old."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        at = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(body, key, at), f"t={at},v1={parts.get('v1', '')}")


class Webhooks:
    """Delivers bodies to platforms' URLs in the background; at most ``concurrency`` at once."""

    def __init__(
        self,
        urls: dict[str, str],
        keys: dict[str, str],
        attempts: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        concurrency: int = 64,
        on_outcome: Callable[[str], None] | None = None,
    ) -> None:
        self.urls, self.keys, self.on_outcome = urls, keys, on_outcome
        self.attempts, self.backoff_s, self.timeout_s = attempts, backoff_s, timeout_s
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[bool]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.delivered = self.failed = 0

    def wants(self, platform: str) -> bool:
        return platform in self.urls

    def push(self, platform: str, body: bytes) -> None:
        """Deliver ``body`` to the platform's webhook, in the background."""
        task = asyncio.create_task(self.deliver(platform, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def deliver(self, platform: str, body: bytes) -> bool:
        """POST until a 2xx, at most ``attempts`` times, waiting backoff, 2x backoff, ... between."""
        async with self._slots:
            for attempt in range(self.attempts):
                if attempt:
                    await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                if await self._post(platform, body):
                    self.delivered += 1
                    self._outcome("delivered")
                    return True
            self.failed += 1
            self._outcome("failed")
            log.warning("webhook gave up", extra={"platform": platform, "attempts": self.attempts})
            return False

    def _outcome(self, outcome: str) -> None:
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    async def _post(self, platform: str, body: bytes) -> bool:
        headers = {"Content-Type": "application/json"}
        if key := self.keys.get(platform):
            headers[HEADER] = sign(body, key, int(time.time()))
        try:
            async with self._client().post(self.urls[platform], data=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    return True
                log.info("webhook attempt refused", extra={"platform": platform, "status": response.status})
                return False
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.info("webhook attempt failed", extra={"platform": platform, "error": type(exc).__name__})
            return False

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def close(self, grace_s: float = 5.0) -> None:
        """Give deliveries in flight ``grace_s`` to finish, then cancel them."""
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in late:
                task.cancel()
        if self._session is not None:
            await self._session.close()
