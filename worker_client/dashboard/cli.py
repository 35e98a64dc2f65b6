"""`pbt-dashboard`: a web page that lists the studies and shows one study's progress while it runs.

Examples:
    pbt-dashboard --service localhost:50051                  # then open http://127.0.0.1:8080/
    PBT_AUTH_TOKEN=secret pbt-dashboard --service pbt.example.org:443 --tls --port 8081
    pbt-dashboard --database-url sqlite:///runs/demo/pbt.db  # read-only, no service needed

The page has no login of its own: it binds to 127.0.0.1 unless told otherwise; reach it from
another machine through `ssh -L 8080:127.0.0.1:8080 host`. It never shows the token.
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from pbt_service.core.errors import PbtError
from worker_client.results import AccessDenied, Results, SourceUnavailable, connect
from worker_client.results.source import add_source_arguments, source_settings
from worker_client.settings import ClientSettings

DEFAULT_SERVICE = "localhost:50051"
DASHBOARD_RETRY_SECONDS = 5.0
"""A page waits this long for an unreachable service before saying so, rather than a worker's 30 s."""
INSTALL_HINT = "pip install 'pbt-service[dashboard]' (from a clone: pip install '.[dashboard]')"


class Terminated(Exception):
    """SIGTERM: uvicorn stops serving gracefully, then raises the signal again; this turns it into
    a normal return, so the results connection is closed and the exit status is 0."""


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {port}")
    return port


def _refresh(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0.1 <= seconds <= 3600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 3600 seconds, got {text}")
    return seconds


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pbt-dashboard", description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[2:]), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_source_arguments(root, default_service=DEFAULT_SERVICE, retry_seconds=DASHBOARD_RETRY_SECONDS)
    web = root.add_argument_group("web page")
    web.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    web.add_argument("--port", type=_port, default=8080,
                     help="port to serve on (default 8080; 0: any free port, printed)")
    web.add_argument("--refresh-seconds", type=_refresh, default=2.0, metavar="SECONDS",
                     help="how often the pages update themselves (default 2)")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `pbt-dashboard`; serves until Ctrl-C or SIGTERM (then returns 0 after a
    graceful stop). Returns 2 for bad options, 1 when a dependency is missing, the database cannot
    be opened, or the address cannot be bound."""
    ap = parser()
    args = ap.parse_args(argv)
    settings = source_settings(ap, args, default_service=DEFAULT_SERVICE, retry_seconds=DASHBOARD_RETRY_SECONDS)
    try:
        import plotly  # noqa: F401 - the page's Plotly.js and figures come from it
        import uvicorn

        from worker_client.dashboard.app import create_app
    except ImportError as error:
        print(f"pbt-dashboard: {error.name or error} is not installed: {INSTALL_HINT}", file=sys.stderr)
        return 1
    try:
        results, source = _open(args.database_url, settings)
    except ValueError as error:
        ap.error(f"--database-url: {error}")
    except (ImportError, PbtError) as error:
        print(f"pbt-dashboard: {error}", file=sys.stderr)
        return 1
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        try:
            sock = _bind(args.host, args.port)
        except OSError as error:
            print(f"pbt-dashboard: cannot serve on {args.host}:{args.port}: {error.strerror or error}", file=sys.stderr)
            return 1
        with sock:
            _probe(results)
            app = create_app(results, refresh_seconds=args.refresh_seconds, source=source,
                             redact=[settings.token] if settings and settings.token else [])
            _warn_if_exposed(args.host)
            print(f"pbt-dashboard: serving http://{_url_host(args.host)}:{sock.getsockname()[1]}/ ({source}); "
                  "Ctrl-C stops it", flush=True)
            config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
            uvicorn.Server(config).run(sockets=[sock])
        return 0
    except (Terminated, KeyboardInterrupt):  # uvicorn stopped gracefully, then raised the signal again
        return 0
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        results.close()


def _open(database_url: str | None, settings: ClientSettings | None) -> tuple[Results, str]:
    """The results source and how the page header names it (never with a token or a password)."""
    if database_url is not None:
        from pbt_service.store.engine import shown_url  # only here: SQLAlchemy is needed anyway

        return connect(database_url), f"database {shown_url(database_url)} (read-only)"
    assert settings is not None
    return connect(settings), f"service {settings.address}{' (TLS)' if settings.uses_tls else ''}"


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here rather than by uvicorn so a taken port is a one-line error
    and port 0 can be printed as the port it became."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _probe(results: Results) -> None:
    """Reads the study list once so a refused token or an unreachable service shows here too,
    not only in the page. Serving goes on either way: the service may come back."""
    try:
        results.studies()
    except (AccessDenied, SourceUnavailable) as error:
        print(f"pbt-dashboard: warning: {error} (the page will say so until this is fixed)", file=sys.stderr)


def _warn_if_exposed(host: str) -> None:
    name = host.strip("[]")
    try:
        loopback = name == "localhost" or ipaddress.ip_address(name).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"pbt-dashboard: warning: serving on {host}: anyone who can reach it can read every study "
              "(the page has no login; the token is never shown)", file=sys.stderr)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


if __name__ == "__main__":
    sys.exit(main())
