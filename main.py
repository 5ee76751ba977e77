"""Beacon's command line: serve (the default), worker, migrate, create-account,
create-token, set-plan, purge."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import signal
import sys
from collections.abc import Sequence

from common.domain import Plan
from common.settings import Settings

log = logging.getLogger("beacon")


def _setup_logging(settings: Settings) -> None:
    from web.logging import setup_logging

    # JSON lines by default (LOG_FORMAT=text for plain lines).
    setup_logging(settings.log_format, _log_level(settings))


def _log_level(settings: Settings) -> int:
    """LOG_LEVEL (debug, info, warning, error) as a number; info when unknown."""
    return logging.getLevelNamesMapping().get(settings.log_level, logging.INFO)


async def _create_account(settings: Settings, name: str, plan: Plan, email: str) -> dict[str, str]:
    from db.accounts import create_account
    from db.engine import Database

    db = Database(settings.database_url)
    try:
        async with db.write() as conn:
            created = await create_account(conn, name=name, plan=plan, email=email)
    finally:
        await db.dispose()
    return {
        "account_id": str(created.account_id),
        "person_id": str(created.person_id),
        "token": created.token,
    }


async def _demo_account_if_none(settings: Settings) -> dict[str, str] | None:
    from db.accounts import count_accounts
    from db.engine import Database

    db = Database(settings.database_url)
    try:
        async with db.read() as conn:
            if await count_accounts(conn) > 0:
                return None
    finally:
        await db.dispose()
    return await _create_account(settings, "Demo", Plan.PREMIUM, "demo@example.com")


def cmd_migrate(settings: Settings, _: argparse.Namespace) -> int:
    from db.migrate import upgrade_sync

    upgrade_sync(settings.database_url)
    print("migrated to the latest schema")
    return 0


def cmd_create_account(settings: Settings, args: argparse.Namespace) -> int:
    from domain.errors import InvalidInput
    from domain.validation import validate_email, validate_name

    # The API's own rules, so that an account made here is one the API would accept.
    try:
        name = validate_name(args.name)
        email = validate_email(args.email)
    except InvalidInput as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    if email is None:
        print("error: --email must not be empty", file=sys.stderr)
        return 2
    created = asyncio.run(_create_account(settings, name, Plan(args.plan), email))
    print(json.dumps(created))
    return 0


def cmd_create_token(settings: Settings, args: argparse.Namespace) -> int:
    import uuid

    from common.time import utcnow
    from db.api_tokens import mint_for_employee
    from db.engine import Database
    from domain.errors import InvalidInput
    from domain.validation import validate_token_name

    try:
        account_id, person_id = uuid.UUID(args.account), uuid.UUID(args.person)
    except ValueError:
        print("error: --account and --person take ids (UUIDs)", file=sys.stderr)
        return 2
    try:
        name = validate_token_name(args.name)
    except InvalidInput as invalid:
        print(f"error: {invalid}", file=sys.stderr)
        return 2

    async def run() -> tuple[uuid.UUID, str] | None:
        db = Database(settings.database_url)
        try:
            async with db.write() as conn:
                return await mint_for_employee(conn, account_id, person_id, name, utcnow())
        finally:
            await db.dispose()

    minted = asyncio.run(run())
    if minted is None:
        print(f"error: account {account_id} has no employee {person_id}", file=sys.stderr)
        return 1
    token_id, secret = minted
    print(json.dumps({"token_id": str(token_id), "person_id": str(person_id), "token": secret}))
    return 0


def cmd_set_plan(settings: Settings, args: argparse.Namespace) -> int:
    import uuid

    from db.accounts import set_plan
    from db.engine import Database

    try:
        account_id = uuid.UUID(args.account)
    except ValueError:
        print(f"error: {args.account!r} is not an account id", file=sys.stderr)
        return 2

    async def run() -> bool:
        db = Database(settings.database_url)
        try:
            async with db.write() as conn:
                return await set_plan(conn, account_id, Plan(args.plan))
        finally:
            await db.dispose()

    if not asyncio.run(run()):
        print(f"error: no account {account_id}", file=sys.stderr)
        return 1
    print(json.dumps({"account_id": str(account_id), "plan": args.plan}))
    return 0


def cmd_purge(settings: Settings, _: argparse.Namespace) -> int:
    from common.time import utcnow
    from db.engine import Database
    from domain.retention import purge_expired

    async def run() -> int:
        db = Database(settings.database_url)
        try:
            return await purge_expired(db, settings, utcnow())
        finally:
            await db.dispose()

    deleted = asyncio.run(run())
    print(json.dumps({"notifications_deleted": deleted}))
    return 0


def cmd_serve(settings: Settings, _: argparse.Namespace) -> int:
    from db.migrate import upgrade_sync
    from web.app import create_app
    from web.server import serve

    if settings.is_sqlite:
        # The embedded default sets itself up; on PostgreSQL operators run `migrate`.
        upgrade_sync(settings.database_url)
        demo = asyncio.run(_demo_account_if_none(settings))
        if demo is not None:
            base = settings.public_base_url
            print(
                "\nBeacon is ready. A demo account (PREMIUM) was created.\n"
                f"  sign-in token : {demo['token']}\n"
                f"  dashboard     : {base}/\n"
                f"  GraphiQL      : {base}/graphql"
                "  (header: Authorization: Bearer <token>)\n"
                + (f"  mailbox       : {base}/mailbox\n" if settings.embedded else ""),
                flush=True,
            )
    # uvicorn ends a SIGTERM by sending it again, to our handler once it restored it:
    # the last log lines are written before the process goes.
    signal.signal(signal.SIGTERM, _flush_logs_and_die)
    app = create_app(settings)
    _tune_gc()
    # uvicorn, with header timeouts and a connection cap (web/server.py).
    serve(
        app,
        settings,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_level=_log_level(settings),
        # Our middleware logs each request once, as JSON (web/logging.py); uvicorn's
        # loggers go through the same handler.
        access_log=False,
        log_config=None,
        # A live update goes to many subscribers as one serialised message; compressing
        # it again for each of them (permessage-deflate) would cost more than sending it.
        ws_per_message_deflate=False,
        # websockets' Sans-I/O protocol: measured cheapest per message sent (47 us of
        # CPU per delivered message against 66 with the legacy "websockets" one).
        ws="websockets-sansio",
    )
    return 0


def _tune_gc() -> None:
    """Fewer, later collector passes: what was built at startup (the schema, the routes)
    is frozen out of every pass, and young objects are collected every 20,000
    allocations instead of 700. A pass over a busy server's objects stalls every
    request and subscriber at once; at 4,000 websocket messages a second the default
    thresholds put 100 ms and more into the 99th percentile."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _flush_logs_and_die(signum: int, _frame: object) -> None:
    logging.shutdown()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def cmd_worker(settings: Settings, _: argparse.Namespace) -> int:
    from broadcast import create_broadcast
    from db.engine import Database
    from sending.worker import Worker

    async def run() -> None:
        db = Database(settings.database_url)
        broadcast = create_broadcast(settings.broadcast_url, prefix=settings.broadcast_prefix)
        await broadcast.connect()
        worker = Worker(db, broadcast, settings)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        try:
            await worker.run()
        finally:
            await broadcast.disconnect()
            await db.dispose()

    asyncio.run(run())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python main.py",
        description="Beacon: tracks the delivery of task and comment notifications.",
        epilog="Settings come from environment variables (DATABASE_URL, SMTP_URL, ...): "
        "see README.md.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the API server (the default)")
    serve.set_defaults(func=cmd_serve)
    worker = commands.add_parser("worker", help="run a send worker (for EMBEDDED_WORKER=0)")
    worker.set_defaults(func=cmd_worker)
    migrate = commands.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)
    create = commands.add_parser(
        "create-account",
        help="create an account with its first employee; prints JSON with the API token",
    )
    create.add_argument("--name", required=True, help="the account's name")
    create.add_argument("--plan", required=True, choices=[plan.value for plan in Plan])
    create.add_argument("--email", required=True, help="the first employee's email")
    create.set_defaults(func=cmd_create_account)
    token = commands.add_parser(
        "create-token", help="mint an API token for an employee; prints JSON with the token"
    )
    token.add_argument("--account", required=True, help="the account's id")
    token.add_argument("--person", required=True, help="the employee's person id")
    token.add_argument("--name", default="cli", help="what the token is for (default: cli)")
    token.set_defaults(func=cmd_create_token)
    plan = commands.add_parser(
        "set-plan", help="change an account's plan (an operator action, not a tenant's)"
    )
    plan.add_argument("--account", required=True, help="the account's id")
    plan.add_argument("--plan", required=True, choices=[plan.value for plan in Plan])
    plan.set_defaults(func=cmd_set_plan)
    purge = commands.add_parser(
        "purge",
        help="delete delivery data older than the longest history window "
        "(HISTORY_DAYS_PREMIUM) and idempotency keys older than 24 hours; workers also do "
        "it every hour",
    )
    purge.set_defaults(func=cmd_purge)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        args = build_parser().parse_args(["serve"])
    settings = Settings.from_env()
    _setup_logging(settings)
    return int(args.func(settings, args))


if __name__ == "__main__":
    sys.exit(main())
