"""The NinjaOne collector, registered by name. Its real implementation has not landed yet:
until it does, a run fails at once and says why, which is the truth."""

from __future__ import annotations

import os
import sys

CREDENTIAL_VARIABLES = ("NINJA_CLIENT_ID", "NINJA_CLIENT_SECRET")


def main() -> int:
    missing = [name for name in CREDENTIAL_VARIABLES if not os.environ.get(name)]
    if missing:
        print(
            f"ninja: credentials not configured (set {' and '.join(missing)} in the environment,"
            " or in the collector's env table in COLLECTOR_HUB_COLLECTORS_FILE)",
            file=sys.stderr,
        )
        return 1
    print("ninja: the NinjaOne collector is not implemented yet in this version", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
