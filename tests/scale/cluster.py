"""Several Beacon processes on one PostgreSQL database and one Redis: API nodes (the
real `python main.py serve`, EMBEDDED_WORKER=0) and send workers (`python main.py
worker`), as a deployment runs them.

Each cluster broadcasts under a channel prefix of its own, so parallel runs sharing a
Redis never hear each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.helpers import Account, create_account
from tests.support.graphql_client import GraphQLClient
from tests.support.server import ROOT, ServerProcess
from tests.support.smtp_sink import SmtpSink

# How often the tests ask another process again: at most 0.1 s.
POLL_SECONDS = 0.05
WAIT_SECONDS = 20.0


async def poll_until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = WAIT_SECONDS
) -> None:
    """Until `check()` holds: for state held by another process, with no event to await."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = check()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_SECONDS)


class WorkerProcess:
    """`python main.py worker` in a child process, its output in a log file."""

    def __init__(self, data_dir: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir / "worker.log"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited
                [sys.executable, str(ROOT / "main.py"), "worker"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def started() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"the worker exited early:\n{self.log}")
            return "started" in self.log

        await poll_until(started, "the worker to start", timeout=30)

    async def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), timeout=15)
        except TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


@dataclass
class Cluster:
    """API nodes and workers sharing a database, a broadcast and a mail server."""

    nodes: list[ServerProcess]
    workers: list[WorkerProcess]
    sink: SmtpSink
    account: Account
    env: dict[str, str]
    _clients: list[GraphQLClient] = field(default_factory=list)

    def client(self, node: int) -> GraphQLClient:
        """A GraphQL client of node `node`, signed in to the account."""
        made = GraphQLClient(self.nodes[node].base_url, self.account.token)
        self._clients.append(made)
        return made

    async def metrics(self, node: int) -> dict[str, float]:
        """Node `node`'s /metrics samples, by name and labels as written."""
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{self.nodes[node].base_url}/metrics", timeout=10)
        response.raise_for_status()
        samples: dict[str, float] = {}
        for line in response.text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    async def close(self) -> None:
        for client in self._clients:
            await client.close()


@contextlib.asynccontextmanager
async def running_cluster(
    tmp_path: Path,
    *,
    database_url: str,
    broadcast_url: str,
    nodes: int = 2,
    workers: int = 2,
    extra_env: dict[str, Any] | None = None,
) -> AsyncIterator[Cluster]:
    async with SmtpSink() as sink:
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BROADCAST_URL": broadcast_url,
            "BROADCAST_PREFIX": f"s{uuid.uuid4().hex[:8]}.",
            "SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
            "EMBEDDED_WORKER": "0",
            "SECRET_KEY": "scale-test-secret",
            "WORKER_POLL_SECONDS": "0.1",
            "LIVE_POLL_SECONDS": "0.5",
            "SMTP_TIMEOUT_SECONDS": "5",
            "PYTHONUNBUFFERED": "1",
            **(extra_env or {}),
        }
        servers = [ServerProcess(tmp_path / f"node{i}", dict(env)) for i in range(nodes)]
        # Pixel links in mail point at the last node: a hit there, a subscriber elsewhere.
        worker_env = {**env, "PUBLIC_BASE_URL": servers[-1].base_url}
        senders = [WorkerProcess(tmp_path / f"worker{i}", worker_env) for i in range(workers)]
        cluster: Cluster | None = None
        try:
            async with asyncio.TaskGroup() as group:
                created = group.create_task(
                    create_account(env, name="Acme", plan="PREMIUM", email="owner@acme.test")
                )
                for server in servers:
                    group.create_task(server.start())
                for sender in senders:
                    group.create_task(sender.start())
            cluster = Cluster(servers, senders, sink, created.result(), env)
            yield cluster
        finally:
            if cluster is not None:
                await cluster.close()
            for sender in senders:
                await sender.stop()
            for server in servers:
                await server.stop()
            # Captured by pytest and shown only when the test fails.
            for server in servers:
                sys.stderr.write(f"----- node {server.base_url} -----\n{server.log}\n")
            for number, sender in enumerate(senders):
                sys.stderr.write(f"----- worker {number} -----\n{sender.log}\n")
