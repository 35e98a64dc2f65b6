"""The dashboard's web application: pages that update themselves, and the JSON they poll.

| route | what |
|---|---|
| `/` | the study list |
| `/studies/{name}` | one study: counters, active trials and their workers, plots, recent trials |
| `/api/studies` | `{"studies": [summary, ...]}` |
| `/api/studies/{name}` | the study page's data (`data.study_json`) |
| `/api/studies/{name}/plots/{plot}` | a plotly figure as JSON (`?metric=NAME&top=N`) |
| `/static/plotly.min.js` | the Plotly.js bundled in the installed plotly package: no CDN, clusters are offline |
| `/healthz` | `ok` while the dashboard runs (it does not ask the service) |

Errors are JSON `{"error": message}`: 404 for an unknown study or plot, 400 for a bad query, 502
when the service refused the token, 503 when it cannot be reached. The results API blocks, so
every read runs in Starlette's thread pool. No page or answer ever holds the token: it is only
in the `PbtClient`, and any secret given as `redact` is masked out of error messages as well.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.resources
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pbt_service.core.errors import NotFoundError
from worker_client.dashboard import data, page
from worker_client.dashboard.script import LIST_SCRIPT, STUDY_SCRIPT
from worker_client.results import AccessDenied, Results, SourceUnavailable
from worker_client.results.plots import PLOTS, plotly_json

T = TypeVar("T")
FAILURES: tuple[tuple[type[Exception], int], ...] = (
    (NotFoundError, 404), (AccessDenied, 502), (SourceUnavailable, 503),
)
"""Which status each error of the results API becomes; anything else is a bug (500)."""
SCRIPT_HASHES = " ".join(
    "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
    for s in (LIST_SCRIPT, STUDY_SCRIPT)
)
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Only the pages' own two scripts and Plotly.js run: injected markup could not run a script.
    "Content-Security-Policy": f"default-src 'self'; script-src 'self' {SCRIPT_HASHES}; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
}


class Failure(Exception):
    """An error of the results API, as the status and the message the dashboard answers with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(
    results: Results, *, refresh_seconds: float = 2.0, source: str = "", redact: Sequence[str] = ()
) -> Starlette:
    """The dashboard over `results` (a service or a database). `source` names where the data
    comes from in the page header (an address, never a token or a password); `redact` are secrets
    masked in every message shown."""
    snapshots = data.Snapshots(results, max_age=min(refresh_seconds / 2, 1.0))
    secrets = [s for s in redact if s]

    async def read(function: Callable[[], T]) -> T:
        try:
            return await run_in_threadpool(function)
        except Exception as error:
            for kind, status in FAILURES:
                if isinstance(error, kind):
                    raise Failure(status, _masked(str(error), secrets)) from None
            raise

    async def studies() -> dict[str, Any]:
        summaries = await read(results.studies)
        return {"studies": [data.summary_json(s) for s in summaries]}

    async def studies_api(request: Request) -> Response:
        return json_response(await studies())

    async def study_api(request: Request) -> Response:
        name = request.path_params["name"]
        return json_response(await read(lambda: data.study_json(snapshots.study(name))))

    async def plot_api(request: Request) -> Response:
        name, plot = request.path_params["name"], request.path_params["plot"]
        if plot not in PLOTS:
            raise Failure(404, f"no plot {plot!r}; the plots are {', '.join(PLOTS)}")
        metric = request.query_params.get("metric") or None
        top = _top(request.query_params.get("top", "3"))

        def figure() -> str:
            study = snapshots.study(name)
            try:
                return plotly_json(plot, study.study, study.all_trials(), metric=metric, top=top)
            except ValueError as error:  # an unknown metric: the message lists the study's metrics
                raise Failure(400, str(error)) from None

        return Response(await read(figure), media_type="application/json",
                        headers={**HEADERS, "Cache-Control": "no-store"})

    async def list_page(request: Request) -> Response:
        try:
            initial = await studies()
            status = 200
        except Failure as failure:
            initial, status = {"error": failure.message}, failure.status
        return html(page.list_page(source=source, refresh_seconds=refresh_seconds, initial=initial), status)

    async def study_page(request: Request) -> Response:
        name = request.path_params["name"]
        try:
            initial: dict[str, Any] = await read(lambda: data.study_json(snapshots.study(name)))
            status = 200
        except Failure as failure:
            if failure.status == 404:
                return html(page.message_page("Study not found", failure.message, source=source, root="../"), 404)
            initial, status = {"error": failure.message}, failure.status
        body = page.study_page(name, PLOTS, source=source, refresh_seconds=refresh_seconds, initial=initial)
        return html(body, status)

    async def failed(request: Request, error: Exception) -> Response:
        assert isinstance(error, Failure)
        if request.url.path.startswith("/api/"):
            return json_response({"error": error.message}, error.status)
        return html(page.message_page("Error", error.message, source=source), error.status)

    async def health(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", list_page), Route("/studies/{name}", study_page),
        Route("/api/studies", studies_api), Route("/api/studies/{name}", study_api),
        Route("/api/studies/{name}/plots/{plot}", plot_api),
        Route("/static/plotly.min.js", plotly_script()), Route("/healthz", health),
    ]  # fmt: skip
    app = Starlette(routes=routes, exception_handlers={Failure: failed},
                    middleware=[Middleware(GZipMiddleware, minimum_size=2048)])
    app.state.results = results
    return app


def json_response(content: Any, status: int = 200) -> Response:
    return JSONResponse(content, status, headers={**HEADERS, "Cache-Control": "no-store"})


def html(content: str, status: int = 200) -> Response:
    return HTMLResponse(content, status, headers={**HEADERS, "Cache-Control": "no-store"})


def plotly_script() -> Callable[[Request], Any]:
    """Serves the installed plotly package's own Plotly.js (the version its figures' JSON is made
    for), gzipped once at start-up (4.8 MB becomes 1.4 MB), cached by the browser for a day."""
    source = importlib.resources.files("plotly") / "package_data" / "plotly.min.js"
    plain = source.read_bytes()
    packed = gzip.compress(plain, compresslevel=6)
    cache = {"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"}

    async def serve(request: Request) -> Response:
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(packed, media_type="text/javascript", headers={**cache, "Content-Encoding": "gzip"})
        return Response(plain, media_type="text/javascript", headers=cache)

    return serve


def _top(text: str) -> int:
    try:
        top = int(text)
    except ValueError:
        raise Failure(400, f"top: expected a whole number, got {text!r}") from None
    if not 1 <= top <= 100:
        raise Failure(400, f"top: must be between 1 and 100, got {top}")
    return top


def _masked(message: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return message
