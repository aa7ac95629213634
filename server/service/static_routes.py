"""The operator console and its files under ``/static/`` (no build step, no CDN).

Each console view has its own address, so a link can be shared and the browser's back and
forward work: every one of them answers the same page, and the page's router
(``static/console/router.js``) draws the view the address names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from collectors.contract import BATCH_ID
from server.api.roles import requires
from server.api.validation import accepts_query
from server.package_data import STATIC_DIR

# The page loads only its own scripts and talks only to this server; inline script and
# markup injected through server text cannot run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)

# The console's addresses: path template -> (the pattern of each path parameter, the query
# parameters the view keeps in the address). A malformed id is the router's 404. The page's
# script reads the query parameters and hands them on, under the same names, to the API route
# that checks them (the Runs view to GET /api/collectors/batches, the Collector view's window to
# GET /api/collectors/stats, the Inventory view's search to GET /api/inventory/devices). The
# OpenAPI document is built from this table.
CONSOLE_VIEWS: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
    "/": ({}, ()),
    "/runs": ({}, ("collectors", "status", "since", "until", "cursor")),
    "/runs/{batch_id}": ({"batch_id": BATCH_ID.pattern.strip("^$")}, ()),
    "/collectors/{collector}": ({"collector": "[A-Za-z0-9_.-]{1,64}"}, ("window",)),
    "/schedules": ({}, ()),
    "/inventory": ({}, ("q", "source", "platform", "missing_from", "removed")),
    "/variances": ({}, ("type", "organization", "status", "q", "id", "days")),
    "/webhooks": ({}, ()),
    "/audit": ({}, ("actor", "action", "target", "outcome", "since", "until", "cursor")),
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _page_handler(query: tuple[str, ...]) -> Handler:
    @requires("public")
    @accepts_query(*query)
    async def console_page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            STATIC_DIR / "index.html",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-cache",
            },
        )

    return console_page


@requires("public")
async def favicon(request: web.Request) -> web.FileResponse:
    """Browsers ask for ``/favicon.ico`` whatever the page links; the page links the SVG."""
    return web.FileResponse(
        STATIC_DIR / "favicon.ico",
        headers={"Content-Type": "image/x-icon", "Cache-Control": "max-age=86400"},
    )


async def revalidate_console_files(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: a file under ``/static/`` is revalidated on every use
    (``no-cache``; an unchanged one answers 304 by its ETag). Without a ``Cache-Control`` a
    browser keeps a file as long as it guesses fit (a tenth of its age), so after an upgrade a
    tab could load new modules beside old ones it kept."""
    if request.path.startswith("/static/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-cache"


def setup_static_routes(app: web.Application) -> None:
    for template, (patterns, query) in CONSOLE_VIEWS.items():
        path = template.format(**{name: f"{{{name}:{pattern}}}" for name, pattern in patterns.items()})
        app.router.add_get(path, _page_handler(query))
    app.router.add_get("/favicon.ico", favicon)
    # add_static resolves names inside STATIC_DIR only and does not follow symlinks out of it.
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    app.on_response_prepare.append(revalidate_console_files)
