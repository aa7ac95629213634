"""Errors a client can cause, each with its HTTP status; the middleware turns them into
``{"error": "..."}`` responses."""

from __future__ import annotations


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if status is not None:
            self.status = status


class ValidationError(ApiError):
    status = 400


class NotFoundError(ApiError):
    status = 404


class ConflictError(ApiError):
    status = 409
