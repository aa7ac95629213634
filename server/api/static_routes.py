"""The dashboard at ``/`` and its files under ``/static/`` (no build step, no CDN)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from server.api.roles import requires

STATIC_DIR = Path(__file__).resolve().parents[2] / "static"

# The page loads only its own scripts and talks only to this server; inline script and
# markup injected through server text cannot run.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@requires("public")
async def dashboard(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


def setup_static_routes(app: web.Application) -> None:
    app.router.add_get("/", dashboard)
    # add_static resolves names inside STATIC_DIR only and does not follow symlinks out of it.
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
