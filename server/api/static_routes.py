"""The operator console and its files under ``/static/`` (no build step, no CDN).

Each console view has its own address, so a link can be shared and the browser's back and
forward work: every one of them answers the same page, and the page's router
(``static/console/router.js``) draws the view the address names.
"""

from __future__ import annotations

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

# The console's addresses (aiohttp path templates; a malformed id is the router's 404). The
# OpenAPI document lists the same tuple.
CONSOLE_PATHS = (
    "/",
    "/runs",
    "/runs/{batch_id:" + BATCH_ID.pattern.strip("^$") + "}",
    "/inventory",
    "/schedules",
    "/collectors/{collector:[A-Za-z0-9_.-]{1,64}}",
)


# What the console's views keep in their address (static/console/views/runs.js, inventory.js):
# one page serves every view, so it accepts them all. The OpenAPI document lists the same.
CONSOLE_QUERY = ("collector", "limit", "q", "source", "platform", "missing_from", "removed")


@requires("public")
@accepts_query(*CONSOLE_QUERY)
async def console_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


@requires("public")
async def favicon(request: web.Request) -> web.FileResponse:
    """Browsers ask for ``/favicon.ico`` whatever the page links; the page links the SVG."""
    return web.FileResponse(
        STATIC_DIR / "favicon.ico",
        headers={"Content-Type": "image/x-icon", "Cache-Control": "max-age=86400"},
    )


def setup_static_routes(app: web.Application) -> None:
    for path in CONSOLE_PATHS:
        app.router.add_get(path, console_page)
    app.router.add_get("/favicon.ico", favicon)
    # add_static resolves names inside STATIC_DIR only and does not follow symlinks out of it.
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
