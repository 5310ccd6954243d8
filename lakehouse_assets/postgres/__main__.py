"""``python -m lakehouse_assets.postgres url|env|stop``: the gold database by hand.

``url`` prints the connection URL (``LAKEHOUSE_POSTGRES_URL``, else the embedded
server's, started if needed), ``env`` the dbt profile's variables as ``export``
lines (``eval "$(python -m lakehouse_assets.postgres env)"``), ``stop`` stops the
embedded server.
"""

from __future__ import annotations

import argparse
import os
import sys

import lakehouse_assets.postgres as package
from lakehouse_assets.postgres.connection import dbt_environment
from lakehouse_assets.postgres.embedded import (
    DEFAULT_EMBEDDED_DIR,
    embedded_postgres_url,
    stop_embedded_postgres,
)
from lakehouse_assets.settings import POSTGRES_URL_VAR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lakehouse_assets.postgres", description=package.__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["url", "env", "stop"])
    parser.add_argument("--dir", default=DEFAULT_EMBEDDED_DIR, help="embedded server data folder")
    args = parser.parse_args(argv)
    if args.command == "stop":
        print("stopped" if stop_embedded_postgres(args.dir) else "not running")
        return 0
    # Read when the command runs, like the definitions read it when they load.
    conninfo = os.environ.get(POSTGRES_URL_VAR) or embedded_postgres_url(args.dir)
    if args.command == "url":
        print(conninfo)
    else:
        for name, value in dbt_environment(conninfo).items():
            print(f"export {name}={value!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
