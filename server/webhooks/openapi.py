"""The webhook paths of the OpenAPI document: receivers, their deliveries and redelivery."""

from __future__ import annotations

from server.openapi.components import (
    ADMIN,
    BAD_BODY,
    NO_NUL,
    SERVER_ERROR,
    Names,
    Part,
    Schema,
    closed_object,
    error,
    json_response,
    nullable,
    operation,
    ref,
)
from server.webhooks.routes import DEFAULT_DELIVERIES, MAX_DELIVERIES
from server.webhooks.rules.receivers import (
    DELIVERY_ID,
    EVENTS,
    MAX_COLLECTORS,
    MAX_DESCRIPTION_CHARS,
    MAX_URL_CHARS,
    WEBHOOK_ID,
)
from server.webhooks.rules.signing import SECRET_PATTERN

# What the server accepts as a receiver URL by default (server/webhooks/rules/address_guard.py has the
# whole rule, which also resolves the name): https, a host of DNS labels with at least one dot, an
# optional port, then a path or query without whitespace or a fragment. The last label starts
# with a letter, as every top-level domain does: that leaves out numeric hosts (public IP
# literals, which the server also takes, and shorthands like 127.1, which it refuses).
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TLD = "[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
RECEIVER_URL_PATTERN = rf"^https://(?:{_LABEL}\.)+{_TLD}\.?(?::[0-9]{{1,5}})?(?:[/?][^\s#]*)?$"


DIGEST = {
    "type": "boolean",
    "description": "variance.* events: one delivery per checks run listing the variances (true), or one per"
    " variance (false, the default). A first complete checks run always sends digests.",
}


def webhook_schemas(names: Names) -> dict[str, Schema]:
    text = {"type": "string"}
    timestamp = ref("Timestamp")
    webhook = {
        "id": ref("WebhookId"),
        "url": {"type": "string", "format": "uri", "maxLength": MAX_URL_CHARS},
        "events": {"type": "array", "minItems": 1, "uniqueItems": True, "items": ref("WebhookEvent")},
        "collectors": {
            **nullable({"type": "array", "minItems": 1, "items": {"type": "string"}}),
            "description": "The collectors this receiver hears about (a batch event: the batch ran one of them);"
            " null: every collector.",
        },
        "description": nullable({"type": "string", "maxLength": MAX_DESCRIPTION_CHARS}),
        "variance_digest": DIGEST,
        "enabled": {"type": "boolean"},
        "disabled_reason": {
            **nullable(text),
            "description": "Why the receiver is disabled: by request, 410 Gone, or failing for too long.",
        },
        "disabled_at": nullable(timestamp),
        "failing_since": {
            **nullable(timestamp),
            "description": "First failed attempt since the last success; null while the receiver answers 2xx.",
        },
        "source": {
            "type": "string",
            "enum": ["api", "settings"],
            "description": "settings: declared in COLLECTOR_HUB_WEBHOOKS; only enabled can be changed by the API.",
        },
        "previous_secret_expires_at": {
            **nullable(timestamp),
            "description": "After a rotation, until when the previous secret also signs.",
        },
        "created_at": timestamp,
        "updated_at": timestamp,
    }
    secret = {
        "type": "string",
        "pattern": SECRET_PATTERN.pattern,
        "description": "whsec_ + base64 of 32 random bytes; the HMAC key is the decoded bytes. Shown only here.",
    }
    description_in = {**nullable({"type": "string", "maxLength": MAX_DESCRIPTION_CHARS, "pattern": NO_NUL})}
    url_in = {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_URL_CHARS,
        "pattern": RECEIVER_URL_PATTERN,
        "description": "An https URL whose host is a public DNS name: no credentials, no fragment, no whitespace."
        " Beyond this pattern the server refuses local names (localhost, *.local, *.internal, *.lan, ...) and"
        " names that resolve to a non-public address, and also takes a public IP address. With"
        " COLLECTOR_HUB_WEBHOOK_ALLOW_PRIVATE=1 it takes http and private hosts too.",
        "examples": ["https://ci.example.com/collector-hub"],
    }
    events_in = {"type": "array", "minItems": 1, "uniqueItems": True, "items": ref("WebhookEvent")}
    collector_names = {"type": "string", "enum": names.collectors} if names.collectors else {"type": "string"}
    collectors_in = nullable(
        {"type": "array", "minItems": 1, "maxItems": MAX_COLLECTORS, "uniqueItems": True, "items": collector_names}
    )
    return {
        "WebhookId": {"type": "string", "pattern": WEBHOOK_ID.pattern, "examples": ["wh_3f2a9c0d1b7e4a55"]},
        "DeliveryId": {
            "type": "string",
            "pattern": DELIVERY_ID.pattern,
            "description": "Also the webhook-id header; the same on every retry.",
        },
        "WebhookEvent": {
            "type": "string",
            "enum": list(EVENTS),
            "description": "batch.*: a batch ended; job.failed: a job failed after its last attempt;"
            " collector.failing, collector.stale, collector.recovered: a collector's health changed (once per change);"
            " variance.opened, variance.resolved: what a complete cross-vendor checks run opened or resolved.",
        },
        "Webhook": closed_object(webhook),
        "WebhookWithSecret": closed_object({**webhook, "secret": secret}),
        "WebhookList": closed_object({"webhooks": {"type": "array", "items": ref("Webhook")}}),
        "WebhookAttempt": closed_object(
            {
                "attempt": {"type": "integer", "minimum": 1},
                "attempted_at": timestamp,
                "url": text,
                "duration_ms": {"type": "integer", "minimum": 0},
                "response_status": {"type": ["integer", "null"]},
                "response_body": {**nullable(text), "description": "The first 1 KiB of the response body."},
                "error": {**nullable(text), "description": "Network error, timeout, refused address, redirect."},
            }
        ),
        "WebhookDelivery": closed_object(
            {
                "delivery_id": ref("DeliveryId"),
                "webhook_id": ref("WebhookId"),
                "event": ref("WebhookEvent"),
                "batch_id": {**nullable(ref("BatchId")), "description": "The batch of a batch.* or job.failed event."},
                "job_id": {**nullable(ref("JobId")), "description": "The job of a job.failed event."},
                "collector": {
                    **nullable({"type": "string"}),
                    "description": "The collector of a job.failed or collector.* event.",
                },
                "test": {"type": "boolean", "description": "Sent by POST /api/webhooks/{webhook_id}/test."},
                "status": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
                "created_at": timestamp,
                "next_attempt_at": nullable(timestamp),
                "completed_at": nullable(timestamp),
                "attempt_count": {"type": "integer", "minimum": 0},
                "attempts": {"type": "array", "items": ref("WebhookAttempt")},
            }
        ),
        "WebhookDeliveryList": closed_object({"deliveries": {"type": "array", "items": ref("WebhookDelivery")}}),
        "WebhookCreateRequest": closed_object(
            {
                "url": url_in,
                "events": {**events_in, "description": 'Default: ["batch.completed"].'},
                "collectors": collectors_in,
                "description": description_in,
                "variance_digest": DIGEST,
            },
            optional=("events", "collectors", "description", "variance_digest"),
        ),
        "WebhookUpdateRequest": {
            **closed_object(
                {
                    "url": url_in,
                    "events": events_in,
                    "collectors": collectors_in,
                    "description": description_in,
                    "enabled": {"type": "boolean"},
                    "variance_digest": DIGEST,
                },
                optional=("url", "events", "collectors", "description", "enabled", "variance_digest"),
            ),
            "minProperties": 1,
        },
        "EmptyRequest": {**closed_object({}), "description": "No body, or an empty JSON object."},
        "WebhookTestRequest": closed_object({"event": ref("WebhookEvent")}, optional=("event",)),
    }


def webhook_paths(names: Names) -> dict[str, Schema]:
    webhook_id = {"name": "webhook_id", "in": "path", "required": True, "schema": ref("WebhookId")}
    delivery_id = {"name": "delivery_id", "in": "path", "required": True, "schema": ref("DeliveryId")}
    bad_id = error("Malformed webhook id ('wh_' and 16 hex digits).")
    missing = error("No webhook with this id.")
    declared = error("The webhook is declared in COLLECTOR_HUB_WEBHOOKS; change the setting instead.")
    optional_empty = {"required": False, "content": {"application/json": {"schema": ref("EmptyRequest")}}}

    def body(name: str) -> Schema:
        return {"required": True, "content": {"application/json": {"schema": ref(name)}}}

    return {
        "/api/webhooks": {
            "post": operation(
                "createWebhook",
                "Register a receiver; the answer holds its secret, shown only this once. " + ADMIN,
                {
                    "201": json_response("The receiver, with its secret.", "WebhookWithSecret"),
                    **BAD_BODY,
                    "400": error(
                        "Bad JSON, unknown field, non-https or non-public url, unknown event, long description."
                    ),
                    "500": SERVER_ERROR,
                },
                requestBody=body("WebhookCreateRequest"),
            ),
            "get": operation(
                "listWebhooks",
                "Every receiver (no secrets). " + ADMIN,
                {"200": json_response("Receivers, oldest first.", "WebhookList"), "500": SERVER_ERROR},
            ),
        },
        "/api/webhooks/{webhook_id}": {
            "get": operation(
                "getWebhook",
                "One receiver (no secret). " + ADMIN,
                {
                    "200": json_response("The receiver.", "Webhook"),
                    "400": bad_id,
                    "404": missing,
                    "500": SERVER_ERROR,
                },
                parameters=[webhook_id],
            ),
            "patch": operation(
                "updateWebhook",
                "Change url, events, collectors, description, variance_digest or enabled."
                " Re-enabling resumes held deliveries. " + ADMIN,
                {
                    "200": json_response("The receiver after the change.", "Webhook"),
                    **BAD_BODY,
                    "400": error("Malformed id, bad JSON, unknown field, bad url or events, or nothing to change."),
                    "404": missing,
                    "409": declared,
                    "500": SERVER_ERROR,
                },
                parameters=[webhook_id],
                requestBody=body("WebhookUpdateRequest"),
            ),
            "delete": operation(
                "deleteWebhook",
                "Delete a receiver and its delivery log. " + ADMIN,
                {
                    "204": {"description": "Deleted."},
                    "400": bad_id,
                    "404": missing,
                    "409": declared,
                    "500": SERVER_ERROR,
                },
                parameters=[webhook_id],
            ),
        },
        "/api/webhooks/{webhook_id}/rotate-secret": {
            "post": operation(
                "rotateWebhookSecret",
                "A new secret; the previous one keeps signing too for 24 hours. " + ADMIN,
                {
                    "200": json_response("The receiver, with its new secret.", "WebhookWithSecret"),
                    "400": error("Malformed webhook id, or a non-empty body."),
                    "404": missing,
                    "409": declared,
                    "500": SERVER_ERROR,
                },
                parameters=[webhook_id],
                requestBody=optional_empty,
            )
        },
        "/api/webhooks/{webhook_id}/deliveries": {
            "get": operation(
                "listWebhookDeliveries",
                "Deliveries to this receiver, newest first, each with every attempt. " + ADMIN,
                {
                    "200": json_response("Deliveries.", "WebhookDeliveryList"),
                    "400": error("Malformed webhook id or limit out of range."),
                    "404": missing,
                    "500": SERVER_ERROR,
                },
                parameters=[
                    webhook_id,
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_DELIVERIES,
                            "default": DEFAULT_DELIVERIES,
                        },
                    },
                ],
            )
        },
        "/api/webhooks/{webhook_id}/test": {
            "post": operation(
                "testWebhook",
                "Send this receiver a test event (default: its first event type), signed and delivered like any"
                ' other, with "test": true in the body. ' + ADMIN,
                {
                    "202": json_response("The test delivery, due now.", "WebhookDelivery"),
                    **BAD_BODY,
                    "400": error("Malformed webhook id, bad JSON, unknown field or unknown event."),
                    "404": missing,
                    "409": error("The receiver is disabled."),
                    "500": SERVER_ERROR,
                },
                parameters=[webhook_id],
                requestBody={"required": False, "content": {"application/json": {"schema": ref("WebhookTestRequest")}}},
            )
        },
        "/api/webhooks/deliveries/{delivery_id}/redeliver": {
            "post": operation(
                "redeliverWebhook",
                "Send a delivery again now (same id, same body), restarting its retry schedule. " + ADMIN,
                {
                    "202": json_response("The delivery, due now.", "WebhookDelivery"),
                    "400": error("Malformed delivery id, or a non-empty body."),
                    "404": error("No delivery with this id."),
                    "409": error("The receiver is disabled, or an attempt is in flight right now."),
                    "500": SERVER_ERROR,
                },
                parameters=[delivery_id],
                requestBody=optional_empty,
            )
        },
    }


PART = Part(schemas=webhook_schemas, paths=webhook_paths)
