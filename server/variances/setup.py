"""Wiring the variances into the app: their routes (reports, exceptions, exports, the live stream)."""

from __future__ import annotations

from aiohttp import web

from server.variances.exception_routes import routes as exception_routes
from server.variances.export_routes import routes as export_routes
from server.variances.report_routes import routes as report_routes
from server.variances.stream import routes as stream_routes


def setup_variances(app: web.Application) -> None:
    app.add_routes(report_routes)
    app.add_routes(exception_routes)
    app.add_routes(export_routes)
    app.add_routes(stream_routes)
