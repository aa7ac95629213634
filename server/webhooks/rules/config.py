"""Webhook settings: receivers declared in ``COLLECTOR_HUB_WEBHOOKS`` and the retry schedule.

``COLLECTOR_HUB_WEBHOOKS`` is a JSON list such as
``[{"url": "https://ci.example.com/hook", "events": ["batch.failed"], "secret": "whsec_..."}]``
(``description`` optional). The secret is given, not generated, because the receiver must know
it in advance. These receivers are upserted at start, keyed by URL, and the API will not change
them; one removed from the setting is deleted at the next start.
"""

from __future__ import annotations

import dataclasses
import json

from server.errors import ValidationError
from server.webhooks.rules.receivers import check_description, check_events, check_url
from server.webhooks.rules.signing import SECRET_PREFIX, is_valid_secret

DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MAX_DECLARED = 100


class WebhookConfigError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class DeclaredWebhook:
    url: str
    events: tuple[str, ...]
    secret: str = dataclasses.field(repr=False)  # never in a log line or a traceback
    description: str | None = None


def parse_declared_webhooks(name: str, raw: str) -> tuple[DeclaredWebhook, ...]:
    """Shape and URL syntax only; whether http/private targets are allowed is checked against
    COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE once all settings are read (``check_declared``)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise WebhookConfigError(f"{name} must be a JSON list of webhooks: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, list) or len(value) > MAX_DECLARED:
        raise WebhookConfigError(f"{name} must be a JSON list of at most {MAX_DECLARED} webhook objects")
    declared: list[DeclaredWebhook] = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise WebhookConfigError(f"{where} must be an object with url, events, secret")
        unknown = sorted(set(item) - {"url", "events", "secret", "description"})
        if unknown:
            raise WebhookConfigError(f"{where} has unknown field(s) {', '.join(unknown)}")
        if not is_valid_secret(item.get("secret")):
            raise WebhookConfigError(f"{where}.secret must be '{SECRET_PREFIX}' followed by base64 of 32 bytes")
        try:
            url = check_url(item.get("url"), allow_private=True)
            events = tuple(check_events(item.get("events")))
            description = check_description(item.get("description"))
        except ValidationError as exc:
            raise WebhookConfigError(f"{where}: {exc.message}") from None
        declared.append(DeclaredWebhook(url, events, item["secret"], description))
    urls = [d.url for d in declared]
    if len(set(urls)) != len(urls):
        raise WebhookConfigError(f"{name} declares the same url more than once")
    return tuple(declared)


def check_declared(name: str, declared: tuple[DeclaredWebhook, ...], *, allow_private: bool) -> None:
    for i, hook in enumerate(declared):
        try:
            check_url(hook.url, allow_private=allow_private)
        except ValidationError as exc:
            raise WebhookConfigError(f"{name}[{i}]: {exc.message}") from None


def parse_retry_schedule(name: str, raw: str) -> tuple[float, ...]:
    """Comma-separated seconds between attempts, e.g. ``5,300,1800``."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    schedule: list[float] = []
    for part in parts:
        try:
            seconds = float(part)
        except ValueError:
            raise WebhookConfigError(f"{name} must be comma-separated seconds, got {part!r}") from None
        if not 0 <= seconds <= 7 * 24 * 3600:
            raise WebhookConfigError(f"{name} entries must be between 0 and 604800 seconds, got {part}")
        schedule.append(seconds)
    if not schedule:
        raise WebhookConfigError(f"{name} must list at least one delay")
    if len(schedule) > 50:
        raise WebhookConfigError(f"{name} must have at most 50 entries")
    return tuple(schedule)
