"""HTTPS and WSS: ``--tls-cert`` / ``--tls-key`` (PEM files) make ``serve`` speak TLS only.

TLS 1.2 is the floor; Python's defaults choose the ciphers. A certificate that cannot be
loaded (wrong path, key not matching, encrypted key) stops the server at start with the
setting named, never with a traceback.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from server.settings import SettingsError


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key, password=lambda: b"")
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"COLLECTOR_HUB_TLS_CERT / COLLECTOR_HUB_TLS_KEY: cannot load {cert} with {key}: {exc} "
            "(PEM certificate chain and an unencrypted PEM private key that matches it)"
        ) from None
    return context
