"""Installed as a user installs it: ``python -m build`` makes an sdist and a wheel (the wheel
built from the sdist, so both must be complete), the wheel goes into a fresh virtual
environment outside the source tree, and the installed ``collector-hub`` serves the dashboard
and the documents, migrates an embedded PostgreSQL and takes a demo batch to completed.

The fresh environment gets only the wheel. Its dependencies are borrowed from the test
environment through a ``.pth`` line (so the test needs no package index) and ``pip check``
proves the wheel's declared requirements are met by them. The borrowed directory's own
``.pth`` files are not processed, so the editable install of this checkout stays invisible:
the test asserts that ``server`` is imported from the wheel.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from server import __version__
from server.package_data import RESOURCE_DIRS
from tests.support.conditions import eventually
from tests.support.processes import clean_environment, free_port

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of this checkout: an sdist, and a wheel built from that sdist.

    No build isolation: an isolated build would fetch setuptools from a package index, and the
    test environment already has it (the ``test`` extra asks for it). Nor build's check of the
    build requirements: it asks the backend for them in two more processes (the sdist's and the
    wheel's, about 0.3 CPU-s each), and a missing setuptools fails the build itself anyway."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", out, ROOT, cwd=out)
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment, outside the checkout, with only the wheel installed."""
    home = tmp_path_factory.mktemp("user")
    venv = home / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=home)
    python = venv / "bin" / "python"
    (wheel,) = dist.glob("collector_hub-*.whl")
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel, cwd=home)
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=home).strip())
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "borrowed_dependencies.pth").write_text("".join(p + "\n" for p in sorted(borrowed)))
    yield venv


def test_the_sdist_and_the_wheel_carry_the_migrations_documents_and_dashboard(dist: Path) -> None:
    (wheel,) = dist.glob("collector_hub-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = set(zf.namelist())
    (sdist,) = dist.glob("collector*hub-*.tar.gz")
    in_sdist = set(_run("tar", "tzf", sdist, cwd=dist).split())
    for folder in RESOURCE_DIRS:
        files = sorted(str(p.relative_to(ROOT / folder)) for p in (ROOT / folder).rglob("*") if p.is_file())
        assert files, folder
        for name in files:
            assert f"server/_data/{folder}/{name}" in in_wheel
            assert any(entry.endswith(f"/{folder}/{name}") for entry in in_sdist), (folder, name)
    assert f"collector_hub-{__version__}.dist-info/METADATA" in in_wheel


def test_the_installed_wheel_imports_from_its_own_environment(installed: Path, tmp_path: Path) -> None:
    python = installed / "bin" / "python"
    env = {**clean_environment(), "PYTHONPATH": ""}
    probe = (
        "import json, server, server.package_data as p; "
        "print(json.dumps({'server': server.__file__, "
        "'dirs': [str(p.SQL_DIR), str(p.DOCS_DIR), str(p.STATIC_DIR)]}))"
    )
    found = json.loads(_run(python, "-c", probe, cwd=tmp_path, env=env))
    assert Path(found["server"]).is_relative_to(installed), found
    for folder in found["dirs"]:
        assert Path(folder).is_relative_to(installed) and "/_data/" in folder, found
    # Every dependency the wheel declares is met (by the borrowed directory). pip itself is
    # borrowed too: one process, where ``pip --python`` would start pip twice (0.45 CPU-s more).
    _run(python, "-m", "pip", "check", cwd=tmp_path, env=env)
    version = _run(installed / "bin" / "collector-hub", "--version", cwd=tmp_path, env=env)
    assert version.strip() == f"collector-hub {__version__}"


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """Not under pytest's tmp_path: run as root, the embedded PostgreSQL runs as its own user,
    and every pytest session started meanwhile makes /tmp/pytest-of-root private again."""
    with tempfile.TemporaryDirectory(prefix="ch-wheel-") as tmp:
        yield Path(tmp)


async def test_the_installed_wheel_serves_a_demo_batch_to_completed(
    installed: Path, tmp_path: Path, data_dir: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = clean_environment(
        COLLECTOR_HUB_DATA_DIR=str(data_dir), DEMO_PAGES="3", DEMO_PAGE_SECONDS="0.05", PYTHONPATH=""
    )
    hub = str(installed / "bin" / "collector-hub")
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            hub, "serve", "--port", str(port), cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> dict[str, str] | None:
                assert proc.returncode is None, log_path.read_text()
                try:
                    async with http.get(f"{url}/readyz") as resp:
                        return await resp.json() if resp.status == 200 else None  # type: ignore[no-any-return]
                except aiohttp.ClientConnectionError:
                    return None

            readiness = await eventually(ready, timeout=90, what="the installed server answers /readyz")
            assert readiness["version"] == __version__
            async with http.get(f"{url}/") as resp:
                assert resp.status == 200 and "<html" in await resp.text()
            static_file = next(p for p in sorted((ROOT / "static").rglob("*")) if p.is_file())
            async with http.get(f"{url}/static/{static_file.relative_to(ROOT / 'static')}") as resp:
                assert resp.status == 200 and await resp.read() == static_file.read_bytes()
            async with http.get(f"{url}/api/docs") as resp:
                names = {d["name"] for d in (await resp.json())["documents"]}
            assert names == {p.name for p in (ROOT / "docs").glob("*.md")}

        run = await asyncio.create_subprocess_exec(
            hub, "run", "demo", "--url", url, "--timeout", "60",
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        output = (await asyncio.wait_for(run.communicate(), 90))[0].decode()
        assert run.returncode == 0, output
        assert "completed" in output.splitlines()[-1], output
    finally:
        if proc.returncode is None:
            proc.terminate()
        returncode = await asyncio.wait_for(proc.wait(), 60)
    log_text = log_path.read_text()
    assert returncode == 0, log_text
    assert "Traceback" not in log_text
    assert (data_dir / "pgdata" / "PG_VERSION").exists()
