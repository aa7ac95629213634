"""The security part of the OpenAPI document: ``GET /api/me``."""

from __future__ import annotations

from collectors.contract import GRANTABLE_ROLES
from server.openapi.components import Names, Part, Schema, closed_object, json_response, nullable, operation

VIA = ("api_key", "jwt", "open")


def security_schemas(names: Names) -> dict[str, Schema]:
    role = {"type": "string", "enum": list(GRANTABLE_ROLES)}
    return {
        "Me": closed_object(
            {
                "actor": {
                    "type": "string",
                    "description": "How the audit trail names this caller: the API key's name (or 'key' and its id"
                    " for a key from the settings), 'jwt' and the token's subject, or 'open mode'.",
                    "examples": ["deploy-bot", "jwt alice@example.com", "open mode"],
                },
                "via": {
                    "type": "string",
                    "enum": list(VIA),
                    "description": "The credential presented; open: the server requires none (every caller is admin).",
                },
                "open_mode": {"type": "boolean", "description": "True when the server requires no credentials."},
                "role": role,
                "roles": {
                    "type": "array",
                    "items": role,
                    "description": "The role and every role it implies, lowest first.",
                },
                "api_key": nullable(
                    closed_object(
                        {
                            "id": {"type": "string", "description": "The key's public id (never the key)."},
                            "name": {
                                "type": ["string", "null"],
                                "description": "The name given at creation; null for a key from the settings.",
                            },
                        }
                    )
                ),
                "subject": {"type": ["string", "null"], "description": "The token's sub claim, for a JWT."},
            }
        )
    }


def security_paths(names: Names) -> dict[str, Schema]:
    return {
        "/api/me": {
            "get": operation(
                "getMe",
                "Who the server takes the caller to be: identity and roles (and whether the server is in open mode)",
                {"200": json_response("The caller.", "Me")},
            )
        }
    }


PART = Part(security_schemas, security_paths)
