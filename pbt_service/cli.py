"""`pbt-service`: run the service or upgrade its database.

Examples:
    pbt-service serve --database-url sqlite:///pbt.db --port 50051
    PBT_AUTH_TOKEN=secret pbt-service serve --host 0.0.0.0 \
        --database-url postgresql+psycopg2://pbt:secret@db/pbt --lease-seconds 120
    pbt-service migrate --database-url postgresql+psycopg2://pbt:secret@db/pbt
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pbt_service.controller import ServiceSettings
from pbt_service.server import DEFAULT_HOST, ServerSettings, serve
from pbt_service.store.engine import shown_url
from pbt_service.store.errors import DatabaseConfigError, SchemaOutdatedError, UnavailableError

DEFAULT_DATABASE = "sqlite:///pbt.db"


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pbt-service", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the gRPC service until SIGTERM")
    run.add_argument("--database-url", default=os.environ.get("PBT_DATABASE_URL", DEFAULT_DATABASE),
                     help="SQLAlchemy URL (env PBT_DATABASE_URL); default %(default)s")
    run.add_argument("--host", default=DEFAULT_HOST,
                     help="address to bind (default %(default)s, this machine only); 0.0.0.0 or [::] serves "
                          "every interface: set PBT_AUTH_TOKEN then")
    run.add_argument("--port", type=int, default=50051, help="port to bind (default %(default)s)")
    run.add_argument("--max-workers", type=int, default=16, help="RPC threads (default %(default)s)")
    run.add_argument("--lease-seconds", type=_positive, default=300.0,
                     help="stop an active trial whose worker is silent this long (default %(default)s)")
    run.add_argument("--retry-after-seconds", type=_positive, default=1.0,
                     help="wait a worker is told when nothing can be suggested (default %(default)s)")
    run.add_argument("--grace-seconds", type=float, default=10.0, help="shutdown grace (default %(default)s)")
    run.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                     help="default %(default)s")
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--database-url", default=os.environ.get("PBT_DATABASE_URL", DEFAULT_DATABASE),
                         help="SQLAlchemy URL (env PBT_DATABASE_URL); default %(default)s")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "migrate":
            from pbt_service.store.schema import upgrade

            upgrade(args.database_url)
            print(f"database {shown_url(args.database_url)} is up to date")
            return 0
        serve(
            ServerSettings(
                database_url=args.database_url,
                host=args.host,
                port=args.port,
                max_workers=args.max_workers,
                auth_token=os.environ.get("PBT_AUTH_TOKEN") or None,
                grace_seconds=args.grace_seconds,
                service=ServiceSettings(
                    lease_seconds=args.lease_seconds, retry_after_seconds=args.retry_after_seconds
                ),
            )
        )
        return 0
    except (SchemaOutdatedError, UnavailableError, DatabaseConfigError) as error:
        print(f"pbt-service: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
