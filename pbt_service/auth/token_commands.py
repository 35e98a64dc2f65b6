"""`pbt-service token create|revoke|list`: manage access tokens in the database directly (an
operator with the database URL is an administrator already; no service needs to run).

`create` prints the new token once, on standard output, and nowhere else: store it in your secret
manager or a Kubernetes Secret. The database keeps its hash.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from pbt_service import limits
from pbt_service.auth.tokens import check_scope, create_token
from pbt_service.core.access import Role, TokenRecord
from pbt_service.core.errors import InvalidArgumentError
from pbt_service.store.errors import NotFoundError
from pbt_service.store.sql_storage import SqlStorage


def add_parser(commands: Any, database_flag: Callable[[argparse.ArgumentParser], None]) -> None:
    token = commands.add_parser("token", help="create, revoke or list access tokens (in the database)")
    actions = token.add_subparsers(dest="token_command", required=True)
    create = actions.add_parser(
        "create", help="create a token and print it (once)",
        description="Create a token and print it on standard output, once. Roles: admin (everything, every "
                    "study), worker (read and write its studies), reader (read its studies).",
    )  # fmt: skip
    create.add_argument("--name", required=True, help="who or what holds it, e.g. team-a-workers")
    create.add_argument("--role", required=True, choices=[role.value for role in Role])
    create.add_argument("--study", action="append", metavar="NAME",
                        help="a study the token may use (repeat for several); default: every study")
    database_flag(create)
    revoke = actions.add_parser("revoke", help="revoke a token by id; calls with it are refused at once")
    revoke.add_argument("id", type=int, help="the token's id (see `pbt-service token list`)")
    database_flag(revoke)
    listing = actions.add_parser("list", help="list tokens (never the tokens themselves)")
    listing.add_argument("--format", choices=("table", "json"), default="table", help="default %(default)s")
    database_flag(listing)


def _row(record: TokenRecord) -> dict[str, object]:
    return {
        "id": record.id, "name": record.name, "role": record.role.value,
        "studies": None if record.studies is None else list(record.studies),
        "created": record.create_time.isoformat(timespec="seconds"),
        "revoked": None if record.revoke_time is None else record.revoke_time.isoformat(timespec="seconds"),
    }  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Runs a token subcommand; exit 2 with one line naming the flag for bad input."""
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    if args.token_command == "create":
        role = Role(args.role)
        try:
            name = limits.check_name(args.name, "--name")
            studies = None if args.study is None else [limits.check_name(s, "--study") for s in args.study]
            check_scope(role, studies)
        except (InvalidArgumentError, ValueError) as error:
            print(f"pbt-service token create: {error}", file=sys.stderr)
            return 2
    storage = SqlStorage.from_url(args.database_url)
    try:
        if args.token_command == "create":
            token, record = create_token(storage, name, role, studies, now)
            scope = "every study" if record.studies is None else ", ".join(record.studies)
            print(f"created token {record.id} ({record.name}, {record.role.value}, {scope}); it is shown only once:",
                  file=sys.stderr)  # fmt: skip
            print(token)
            return 0
        if args.token_command == "revoke":
            try:
                record = storage.run(lambda tx: tx.revoke_token(args.id, now))
            except NotFoundError:
                print(f"pbt-service token revoke: id: no token {args.id}", file=sys.stderr)
                return 2
            print(f"token {record.id} ({record.name}) revoked")
            return 0
        records = storage.run(lambda tx: tx.list_tokens())
        rows = [_row(record) for record in records]
        if args.format == "json":
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'id':>4}  {'name':<24} {'role':<7} {'studies':<24} {'created':<26} revoked")
        for record in records:
            scope = "*" if record.studies is None else ",".join(record.studies)
            revoked = "-" if record.revoke_time is None else record.revoke_time.isoformat(timespec="seconds")
            print(f"{record.id:>4}  {record.name:<24} {record.role.value:<7} {scope:<24} "
                  f"{record.create_time.isoformat(timespec='seconds'):<26} {revoked}")  # fmt: skip
        return 0
    finally:
        storage.close()
