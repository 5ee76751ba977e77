"""Settings read from the environment in one place (DESIGN.md section 6)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path

from common.domain import Plan

DEFAULT_DATA_DIR = Path("data")


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    broadcast_url: str
    smtp_url: str | None
    mail_from: str
    public_base_url: str
    secret_key: bytes = field(repr=False)
    host: str
    port: int
    forwarded_allow_ips: str
    embedded_worker: bool
    mailcatcher_host: str
    mailcatcher_port: int
    send_max_attempts: int
    retry_base_seconds: float
    retry_max_seconds: float
    smtp_timeout_seconds: float
    worker_poll_seconds: float
    worker_batch_size: int
    lease_seconds: float
    bounce_domain: str
    bounce_smtp_host: str
    bounce_smtp_port: int | None
    email_concurrency: int
    channel_concurrency: int
    smtp_pool_size: int
    recipient_rate_limit: int
    recipient_rate_window_seconds: float
    pixel_buffer_size: int
    open_rules_path: Path | None  # None: the rules shipped beside pixel/confidence.py
    history_days_paid: int
    history_days_premium: int
    purge_interval_seconds: float
    telegram_api_url: str
    whatsapp_api_url: str
    twilio_api_url: str
    http_timeout_seconds: float
    # Tenants' webhooks and SMTP relays may reach loopback and private networks.
    allow_private_networks: bool
    # The shared secret an MTA sends to POST /callbacks/email-bounce; None: the route
    # refuses everything.
    bounce_webhook_secret: str | None = field(repr=False)
    # Scale-out and operations (issue 6)
    broadcast_prefix: str
    log_format: str
    log_pixel_hits: bool
    graphql_max_depth: int
    graphql_max_tokens: int
    graphql_max_aliases: int
    ws_max_subscriptions: int
    pixel_commits_in_flight: int
    pixel_commit_window_seconds: float
    live_poll_seconds: float
    live_gap_seconds: float
    # Request limits (issue 13; docs/adr/0015-request-limits.md)
    log_level: str
    graphql_max_body_bytes: int
    graphql_max_document_bytes: int
    max_header_bytes: int
    header_timeout_seconds: float
    body_timeout_seconds: float
    max_connections: int
    ws_connection_init_timeout_seconds: float
    ws_max_connections_per_token: int
    rate_limit_per_minute: int
    rate_limit_per_ip_per_minute: int
    # Status webhooks (issue 15; docs/adr/0021-status-webhooks.md)
    webhook_retry_seconds: tuple[float, ...]
    webhook_timeout_seconds: float
    webhook_disable_after_seconds: float
    webhook_concurrency: int

    @property
    def embedded(self) -> bool:
        """True when the server also runs the built-in mail catcher."""
        return self.smtp_url is None

    def history_days(self, plan: Plan) -> int | None:
        """Days of delivery history a plan shows; None where it has no tracking."""
        return {
            Plan.FREE: None,
            Plan.PAID: self.history_days_paid,
            Plan.PREMIUM: self.history_days_premium,
        }[plan]

    @property
    def longest_history_days(self) -> int:
        return max(self.history_days_paid, self.history_days_premium)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_smtp_url(self) -> str:
        if self.smtp_url is not None:
            return self.smtp_url
        return f"smtp://{self.mailcatcher_host}:{self.mailcatcher_port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("DATA_DIR", str(DEFAULT_DATA_DIR)))
        host = env.get("HOST", "127.0.0.1")
        port = int(env.get("PORT", "8000"))
        mail_from = env.get("MAIL_FROM", "Beacon <notifications@localhost>")
        smtp_url = env.get("SMTP_URL") or None
        # Rate limits guard a shared server; the embedded default is one developer's.
        rate_limited = smtp_url is not None
        return cls(
            data_dir=data_dir,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'beacon.sqlite3'}",
            broadcast_url=env.get("BROADCAST_URL", "memory://"),
            smtp_url=smtp_url,
            mail_from=mail_from,
            public_base_url=env.get("PUBLIC_BASE_URL", f"http://{host}:{port}").rstrip("/"),
            secret_key=_secret_key(env.get("SECRET_KEY"), data_dir),
            host=host,
            port=port,
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
            embedded_worker=_flag(env.get("EMBEDDED_WORKER", "1")),
            mailcatcher_host=env.get("MAILCATCHER_HOST", "127.0.0.1"),
            mailcatcher_port=int(env.get("MAILCATCHER_PORT", "1025")),
            send_max_attempts=int(env.get("SEND_MAX_ATTEMPTS", "8")),
            retry_base_seconds=float(env.get("RETRY_BASE_SECONDS", "30")),
            retry_max_seconds=float(env.get("RETRY_MAX_SECONDS", "3600")),
            smtp_timeout_seconds=float(env.get("SMTP_TIMEOUT_SECONDS", "30")),
            worker_poll_seconds=float(env.get("WORKER_POLL_SECONDS", "1")),
            worker_batch_size=int(env.get("WORKER_BATCH_SIZE", "20")),
            lease_seconds=float(env.get("LEASE_SECONDS", "120")),
            bounce_domain=env.get("BOUNCE_DOMAIN") or _domain_of(mail_from),
            bounce_smtp_host=env.get("BOUNCE_SMTP_HOST", "127.0.0.1"),
            bounce_smtp_port=int(env["BOUNCE_SMTP_PORT"]) if env.get("BOUNCE_SMTP_PORT") else None,
            email_concurrency=int(env.get("EMAIL_CONCURRENCY", "10")),
            channel_concurrency=int(env.get("CHANNEL_CONCURRENCY", "10")),
            smtp_pool_size=int(env.get("SMTP_POOL_SIZE", "4")),
            # The source system caps mail at 50 emails per recipient per 10 minutes.
            recipient_rate_limit=int(env.get("RECIPIENT_RATE_LIMIT", "50")),
            recipient_rate_window_seconds=float(env.get("RECIPIENT_RATE_WINDOW_SECONDS", "600")),
            pixel_buffer_size=int(env.get("PIXEL_BUFFER_SIZE", "10000")),
            open_rules_path=Path(env["OPEN_RULES_PATH"]) if env.get("OPEN_RULES_PATH") else None,
            # How far back delivery data is shown, by plan (the source: a higher plan
            # gives access to a longer period). Data is kept up to the longest.
            history_days_paid=int(env.get("HISTORY_DAYS_PAID", "30")),
            history_days_premium=int(env.get("HISTORY_DAYS_PREMIUM", "365")),
            purge_interval_seconds=float(env.get("PURGE_INTERVAL_SECONDS", "3600")),
            telegram_api_url=env.get("TELEGRAM_API_URL", "https://api.telegram.org").rstrip("/"),
            whatsapp_api_url=env.get("WHATSAPP_API_URL", "https://graph.facebook.com/v21.0").rstrip(
                "/"
            ),
            twilio_api_url=env.get("TWILIO_API_URL", "https://api.twilio.com").rstrip("/"),
            http_timeout_seconds=float(env.get("HTTP_TIMEOUT_SECONDS", "15")),
            # Webhooks and account relays to loopback and private networks are refused
            # unless allowed: a tenant must not make the server call its own neighbours
            # (SSRF). WEBHOOK_ALLOW_PRIVATE is the older name of the same switch.
            allow_private_networks=_flag(
                env.get("ALLOW_PRIVATE_NETWORKS") or env.get("WEBHOOK_ALLOW_PRIVATE") or "0"
            ),
            bounce_webhook_secret=env.get("BOUNCE_WEBHOOK_SECRET") or None,
            # Put in front of every broadcast channel name: deployments (or test runs)
            # sharing one Redis do not hear each other.
            broadcast_prefix=env.get("BROADCAST_PREFIX", ""),
            log_format=env.get("LOG_FORMAT", "json").strip().lower(),
            # A pixel hit's request line names neither message nor reader: off unless
            # asked for (web/stack.py).
            log_pixel_hits=_flag(env.get("LOG_PIXEL_HITS", "0")),
            graphql_max_depth=int(env.get("GRAPHQL_MAX_DEPTH", "12")),
            graphql_max_tokens=int(env.get("GRAPHQL_MAX_TOKENS", "2000")),
            graphql_max_aliases=int(env.get("GRAPHQL_MAX_ALIASES", "20")),
            ws_max_subscriptions=int(env.get("WS_MAX_SUBSCRIPTIONS", "20")),
            # Pixel group commits in flight at once (PostgreSQL; SQLite has one writer).
            pixel_commits_in_flight=int(env.get("PIXEL_COMMITS_IN_FLIGHT", "4")),
            # Under load, how long a pixel group commit gathers opens before a batch.
            pixel_commit_window_seconds=float(env.get("PIXEL_COMMIT_WINDOW_MS", "20")) / 1000,
            live_poll_seconds=float(env.get("LIVE_POLL_SECONDS", "1")),
            live_gap_seconds=float(env.get("LIVE_GAP_SECONDS", "30")),
            log_level=env.get("LOG_LEVEL", "info").strip().upper(),
            # What a client may send and for how long, before any of it is parsed.
            graphql_max_body_bytes=int(env.get("GRAPHQL_MAX_BODY_BYTES", str(1024 * 1024))),
            graphql_max_document_bytes=int(env.get("GRAPHQL_MAX_DOCUMENT_BYTES", "65536")),
            max_header_bytes=int(env.get("MAX_HEADER_BYTES", "65536")),
            header_timeout_seconds=float(env.get("HEADER_TIMEOUT_SECONDS", "10")),
            body_timeout_seconds=float(env.get("BODY_TIMEOUT_SECONDS", "30")),
            max_connections=int(env.get("MAX_CONNECTIONS", "10000")),
            ws_connection_init_timeout_seconds=float(
                env.get("WS_CONNECTION_INIT_TIMEOUT_SECONDS", "60")
            ),
            ws_max_connections_per_token=int(env.get("WS_MAX_CONNECTIONS_PER_TOKEN", "50")),
            rate_limit_per_minute=int(
                env.get("RATE_LIMIT_PER_MINUTE", "1200" if rate_limited else "0")
            ),
            rate_limit_per_ip_per_minute=int(
                env.get("RATE_LIMIT_PER_IP_PER_MINUTE", "3000" if rate_limited else "0")
            ),
            # The waits before each retry of a webhook event (then it is given up): about
            # a day in all, each with jitter.
            webhook_retry_seconds=tuple(
                float(part)
                for part in env.get(
                    "WEBHOOK_RETRY_SECONDS", "5,300,1800,7200,18000,36000,36000"
                ).split(",")
                if part.strip()
            ),
            webhook_timeout_seconds=float(env.get("WEBHOOK_TIMEOUT_SECONDS", "10")),
            webhook_disable_after_seconds=float(
                env.get("WEBHOOK_DISABLE_AFTER_SECONDS", str(3 * 24 * 3600))
            ),
            webhook_concurrency=int(env.get("WEBHOOK_CONCURRENCY", "20")),
        )


def _domain_of(header: str) -> str:
    return parseaddr(header)[1].rpartition("@")[2] or "localhost"


def _secret_key(configured: str | None, data_dir: Path) -> bytes:
    """The configured key, or one generated on first use and kept under the data dir.

    Keeping it on disk means pixel links in mail already sent stay valid across restarts.
    """
    if configured:
        return configured.encode()
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip().encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written aside, then linked into place: two processes starting at once end up
    # with one key, and neither ever reads a half-written file.
    tmp = data_dir / f".secret_key.{os.getpid()}"
    tmp.write_text(secrets.token_urlsafe(48))
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip().encode()
