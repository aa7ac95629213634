"""OpenSSL's trusted certificates looked up lazily, in the hashed directory, for the test run and
every process it starts.

Importing aiohttp builds two SSL contexts, and each reads the system's whole CA bundle
(``SSL_CERT_FILE``, on Debian /etc/ssl/certs/ca-certificates.crt: about 140 certificates). With
OpenSSL 3 that costs 0.05 to 0.08 s of CPU a context on this machine, so about 0.1 to 0.17 s in
every process that imports aiohttp: each pytest worker and each ``serve``, CLI and vendor
collector process the tests start (about 200 of them a run). With the bundle file pointed at a
path that does not exist, OpenSSL skips it and finds a CA in the hashed directory
(``SSL_CERT_DIR``, the same certificates) only when a verification asks for it. No test relies
on the system's CAs: the TLS tests trust their own certificate explicitly.

Set whatever the environment says (this machine's sets the Debian bundle): the tests need no
system CA. Loaded with ``-p`` from pyproject.toml's addopts, so before pytest loads the plugins
that import aiohttp."""

from __future__ import annotations

import os

NO_BUNDLE = "/nonexistent/collector-hub-tests/ca-bundle.crt"

os.environ["SSL_CERT_FILE"] = NO_BUNDLE
