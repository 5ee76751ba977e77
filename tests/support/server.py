"""Runs the real server (`python main.py serve`) in a child process for end-to-end tests."""

from __future__ import annotations

import asyncio
import itertools
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


# Ports handed to a child process (a server's PORT, its mail catcher's) are not picked by
# binding port 0: another test process's server or outgoing connection can take such a
# port before the child binds it (CI saw "address already in use"). They come from a
# block below Linux's ephemeral ports (32768-60999 by default), one block per
# pytest-xdist process, each port checked free before it is handed out.
_FIRST_PORT = 20_000
_PORTS_PER_PROCESS = 1_000


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")  # "gw0", "gw1", …
    number = worker.removeprefix("gw")
    start = _FIRST_PORT + (int(number) if number.isdigit() else 0) * _PORTS_PER_PROCESS
    return range(start, start + _PORTS_PER_PROCESS)


_ports = itertools.cycle(_port_block())


def free_port() -> int:
    for _ in range(_PORTS_PER_PROCESS):
        port = next(_ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:  # in use (a live server, or connections still closing)
                continue
        return port
    raise RuntimeError(f"no free port in {_port_block()}")


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
