"""Where the files that ship beside the code are: ``sql/`` (migrations), ``docs/`` (served at
``/api/docs``) and ``static/`` (the dashboard).

The top-level folders of the repository are the only copy kept in git. A wheel carries them
inside the package, as ``server/_data/{sql,docs,static}`` (setup.py copies them in at build
time), so an installed ``collector-hub`` finds them through ``importlib.resources`` wherever
pip put it. A source checkout (an editable install, or the tests) has no ``_data`` and uses
the folders beside the packages.

The packaged copy is looked for first: a site-packages directory may hold an unrelated
top-level ``docs`` or ``static`` that some other distribution installed.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

RESOURCE_DIRS: Final = ("sql", "docs", "static")
PACKAGED_DIR: Final = "_data"


class MissingResourceError(RuntimeError):
    """The installation lacks one of the folders the server needs."""


def resource_dir(name: str) -> Path:
    """The folder ``name`` (one of RESOURCE_DIRS) as a path on disk."""
    if name not in RESOURCE_DIRS:
        raise ValueError(f"unknown resource folder {name!r}; known: {', '.join(RESOURCE_DIRS)}")
    # A wheel installs as plain files, so the traversable is a real directory path.
    packaged = Path(str(resources.files("server").joinpath(PACKAGED_DIR, name)))
    if packaged.is_dir():
        return packaged
    in_checkout = Path(__file__).resolve().parents[1] / name
    if in_checkout.is_dir():
        return in_checkout
    raise MissingResourceError(
        f"collector-hub cannot find its {name}/ folder (looked in {packaged} and {in_checkout}); "
        "reinstall the package: the wheel carries it"
    )


SQL_DIR: Final = resource_dir("sql")
DOCS_DIR: Final = resource_dir("docs")
STATIC_DIR: Final = resource_dir("static")
