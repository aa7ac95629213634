"""Bytecode caches on for the test run and every process it starts, whatever
PYTHONDONTWRITEBYTECODE says (some containers and CI images set it, this machine too).

Loaded with ``-p`` from pyproject.toml's addopts, so before pytest loads the plugins of other
packages: pytest rewrites the assertions of every plugin's modules (hypothesis, schemathesis,
anyio, ...) and, without a cache to write that to, does it again in each pytest process: about
2.5 s of CPU in each of the seven (the run and its six workers). Turned on later, in conftest.py,
it missed those. Without caches each worker also rewrites every test module again (about 8 s of
CPU per worker), and each ``serve``, CLI and collector process the tests start compiles the
project's modules again (about 0.25 s each, hundreds of times). The caches go to __pycache__
directories, which git ignores."""

from __future__ import annotations

import os
import sys

sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
