"""Runs the real server (`python main.py serve`) in a child process for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from common.service import Service
from tests.support.reading import untimed_rules

ROOT = Path(__file__).resolve().parents[2]
# What the test servers take on POST /callbacks/email-bounce (BOUNCE_WEBHOOK_SECRET).
BOUNCE_SECRET = "test-bounce-secret"
BOUNCE_AUTH = {"Authorization": f"Bearer {BOUNCE_SECRET}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess(Service):
    """`async with ServerProcess(env) as server:` waits until /healthz answers."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / "server.log"
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "DATA_DIR": str(data_dir),
            "PUBLIC_BASE_URL": self.base_url,
            "SECRET_KEY": "test-secret-key",
            "BOUNCE_WEBHOOK_SECRET": BOUNCE_SECRET,
            "MAILCATCHER_PORT": str(free_port()),
            "WORKER_POLL_SECONDS": "0.2",
            "RETRY_BASE_SECONDS": "0.2",
            "RETRY_MAX_SECONDS": "1",
            "SMTP_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
            # Tests open pixels faster than people do (tests/support/reading.py).
            "OPEN_RULES_PATH": str(untimed_rules(data_dir)),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self, timeout: float = 30) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
                [sys.executable, str(ROOT / "main.py"), "serve"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the server exited early:\n{self.log}")
                try:
                    response = await client.get(f"{self.base_url}/healthz", timeout=1)
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise RuntimeError(f"the server did not start:\n{self.log}")
                # Polling a child process's port: there is no event to await here.
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout=15)
        except TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
