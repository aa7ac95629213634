"""The OpenAPI document, one module per part; document.py assembles them."""

from server.openapi.document import build_openapi

__all__ = ["build_openapi"]
