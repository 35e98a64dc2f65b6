"""`pbt-service`: run the service, upgrade its database, manage access tokens.

Examples:
    pbt-service serve --database-url sqlite:///pbt.db --port 50051
    PBT_AUTH_TOKEN=secret pbt-service serve --host 0.0.0.0 \\
        --database-url postgresql+psycopg2://pbt:secret@db/pbt --lease-seconds 120
    pbt-service migrate --database-url postgresql+psycopg2://pbt:secret@db/pbt
    pbt-service token create --name team-a-workers --role worker --study mnist
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from pbt_service import options
from pbt_service.auth import token_commands
from pbt_service.controller import ServiceSettings
from pbt_service.observability.logs import configure_logging
from pbt_service.options import DEFAULT_DATABASE, SERVE_OPTIONS, OptionError
from pbt_service.server import ServerSettings, serve
from pbt_service.store.engine import shown_url
from pbt_service.store.errors import DatabaseConfigError, SchemaOutdatedError, UnavailableError
from pbt_service.transport import LimitSettings, TlsSettings

TOKEN_ENV = "PBT_AUTH_TOKEN"


def _database_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=os.environ.get("PBT_DATABASE_URL", DEFAULT_DATABASE),
                        help="SQLAlchemy URL (env PBT_DATABASE_URL); default %(default)s")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pbt-service", description=__doc__.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="\n".join(__doc__.splitlines()[2:]))
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "serve", help="run the gRPC service until SIGTERM",
        description=f"Run the gRPC service until SIGTERM. Every setting is a flag or a variable (a flag wins). "
                    f"{TOKEN_ENV} (environment only) is the admin token; with it or --require-token every call "
                    "but health checks needs a valid token.",
    )  # fmt: skip
    options.add_options(run, SERVE_OPTIONS)
    migrate = commands.add_parser("migrate", help="create or upgrade the database schema")
    _database_flag(migrate)
    token_commands.add_parser(commands, _database_flag)
    return root


def server_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> ServerSettings:
    """The serve settings from flags, then variables, then defaults. Raises OptionError naming the
    flag or variable of a bad value."""
    env = dict(os.environ) if environ is None else environ
    return _settings(options.resolve(args, SERVE_OPTIONS, env), env)


def _settings(values: dict[str, Any], env: Mapping[str, str]) -> ServerSettings:
    """`ServerSettings` from the resolved SERVE_OPTIONS values; the admin token from `env`."""
    cert, key, client_ca = values["tls_cert"], values["tls_key"], values["tls_client_ca"]
    if (cert is None) != (key is None):
        raise OptionError("--tls-cert and --tls-key go together (env PBT_TLS_CERT, PBT_TLS_KEY): give both or neither")
    if client_ca is not None and cert is None:
        raise OptionError("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS first")
    return ServerSettings(
        database_url=values["database_url"],
        host=values["host"],
        port=values["port"],
        max_workers=values["max_workers"],
        auth_token=env.get(TOKEN_ENV) or None,
        require_token=values["require_token"],
        grace_seconds=values["grace_seconds"],
        service=ServiceSettings(
            lease_seconds=values["lease_seconds"], retry_after_seconds=values["retry_after_seconds"]
        ),
        tls=TlsSettings(cert, key, client_ca) if cert is not None else None,
        limits=LimitSettings(
            max_message_bytes=values["max_message_bytes"],
            max_concurrent_rpcs=values["max_concurrent_rpcs"],
            max_streams_per_connection=values["max_streams_per_connection"],
        ),
        metrics_host=values["metrics_host"],
        metrics_port=values["metrics_port"],
        health_check_seconds=values["health_check_seconds"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "serve":
            values = options.resolve(args, SERVE_OPTIONS)
            settings = _settings(values, os.environ)
            configure_logging(values["log_level"], values["log_format"])
            serve(settings)
            return 0
        logging.basicConfig(level="WARNING", format="%(levelname)s %(name)s: %(message)s")
        if args.command == "migrate":
            from pbt_service.store.schema import upgrade

            upgrade(args.database_url)
            print(f"database {shown_url(args.database_url)} is up to date")
            return 0
        return token_commands.run(args)
    except OptionError as error:
        print(f"pbt-service: {error}", file=sys.stderr)
        return 2
    except (SchemaOutdatedError, UnavailableError, DatabaseConfigError, OSError) as error:
        print(f"pbt-service: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
