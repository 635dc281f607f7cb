"""`banter gateway` as a child process for the integration tests, and a small HTTP client."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streams.process import ROOT, WorkerProcess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class GatewayProcess(WorkerProcess):
    """``banter gateway`` with ``env`` as its settings; its port is a fresh free one."""

    env: dict[str, str]

    def start(self) -> GatewayProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "streams", "gateway"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['BANTER_GATEWAY_PORT']}"

    def wait_ready(self, timeout_s: float = 60.0) -> GatewayProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive:
                pytest.fail(f"the gateway exited; log:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        pytest.fail(f"the gateway did not answer within {timeout_s:.0f} s; log:\n{self.log_tail()}")


def start_gateway(env: dict[str, str], logs: Path, **settings: str) -> GatewayProcess:
    env = {**env, "BANTER_GATEWAY_PORT": str(free_port()), "BANTER_LOG_LEVEL": "info", **settings}
    return GatewayProcess(env, logs / f"gateway-{env['BANTER_GATEWAY_PORT']}.log").start().wait_ready()


def call(
    method: str, url: str, body: Any = None, token: str | None = None, data: bytes | None = None
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, JSON body, headers) of one request."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=payload, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)
