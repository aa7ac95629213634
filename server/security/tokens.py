"""JWT bearer tokens (PyJWT): HS256 with a shared secret, RS256 or ES256 with a public key.

The algorithm a token may use is decided by the server's configuration, never by the token:
the token's ``alg`` header only selects among the configured ones, and each algorithm is
verified only with its own key (so ``alg: none``, an HS256 token signed with the public key
as the secret, and any algorithm not configured are all refused). ``exp`` is required;
``nbf`` and ``iat`` are checked when present; ``iss`` and ``aud`` are required and checked
when configured.

The role comes from the ``role`` claim (configurable), else from ``scope`` (space separated)
or ``scopes``/``roles`` (lists): the highest of ``read``, ``trigger``, ``admin`` named there.

PyJWT and cryptography are imported only once a JWT setting is given: together they are about a
quarter of what importing the server costs (cryptography's compiled bindings), which every
``serve`` without JWT paid at start for nothing.
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

from collectors.contract import ROLES
from server.settings import SettingsError

# Clock skew tolerated between the token issuer and this server, for exp/nbf/iat.
LEEWAY_SECONDS = 30
MIN_SECRET_BYTES = 32


class TokenError(Exception):
    """The token is not acceptable; the message says why, without echoing the token."""


class TokenConfigError(SettingsError):
    """The JWT settings cannot be used (bad key file, too short a secret)."""


@dataclasses.dataclass(frozen=True)
class TokenClaims:
    subject: str | None
    role: str | None


@dataclasses.dataclass(frozen=True)
class TokenVerifier:
    keys: dict[str, Any]  # algorithm -> the one key that verifies it
    issuer: str | None
    audience: str | None
    role_claim: str

    @classmethod
    def from_settings(
        cls,
        secret: str | None,
        public_key_file: Path | None,
        issuer: str | None,
        audience: str | None,
        role_claim: str,
    ) -> TokenVerifier | None:
        """None when no JWT is configured."""
        keys: dict[str, Any] = {}
        if secret is not None:
            if len(secret.encode()) < MIN_SECRET_BYTES:
                raise TokenConfigError(f"COLLECTOR_HUB_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes for HS256")
            keys["HS256"] = secret.encode()
        if public_key_file is not None:
            algorithm, key = _public_key(public_key_file)
            keys[algorithm] = key
        if not keys:
            return None
        importlib.import_module("jwt")  # with the settings, not by the first request that sends a token
        return cls(keys, issuer, audience, role_claim)

    def verify(self, token: str) -> TokenClaims:
        jwt = importlib.import_module("jwt")  # here, not at the top: see the module's docstring
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.keys:
            raise TokenError(f"token algorithm {str(algorithm)[:20]!r} is not accepted")
        required = ["exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        try:
            claims = jwt.decode(
                token,
                self.keys[algorithm],
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_SECONDS,
                options={"require": required, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.ImmatureSignatureError:
            raise TokenError("token not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenError(f"token lacks the {exc.claim} claim") from None
        except (jwt.InvalidIssuerError, jwt.InvalidAudienceError) as exc:
            raise TokenError(str(exc).lower()) from None
        except jwt.InvalidSignatureError:
            raise TokenError("token signature does not verify") from None
        except jwt.PyJWTError:
            raise TokenError("invalid token") from None
        subject = claims.get("sub")
        return TokenClaims(subject if isinstance(subject, str) else None, self.role_from(claims))

    def role_from(self, claims: dict[str, Any]) -> str | None:
        named: list[Any] = []
        for claim in (self.role_claim, "scope", "scopes", "roles"):
            value = claims.get(claim)
            if isinstance(value, str):
                named.extend(value.split())
            elif isinstance(value, list):
                named.extend(value)
        granted = [ROLES.index(n) for n in named if isinstance(n, str) and n in ROLES and n != "public"]
        return ROLES[max(granted)] if granted else None


def _public_key(path: Path) -> tuple[str, Any]:
    """The JWT algorithm a PEM public key file is for, and the key (the file is read once)."""
    ec = importlib.import_module("cryptography.hazmat.primitives.asymmetric.ec")
    rsa = importlib.import_module("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization = importlib.import_module("cryptography.hazmat.primitives.serialization")
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise TokenConfigError(f"COLLECTOR_HUB_JWT_PUBLIC_KEY_FILE: cannot read a PEM public key: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise TokenConfigError("COLLECTOR_HUB_JWT_PUBLIC_KEY_FILE: RSA keys must have at least 2048 bits")
        return "RS256", key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", key
    raise TokenConfigError("COLLECTOR_HUB_JWT_PUBLIC_KEY_FILE must hold an RSA or P-256 (ES256) public key")
