"""Entry point of one processor worker process: ``python -m edge_ext.worker --config F --index N``."""

from __future__ import annotations

import argparse
import asyncio
import logging

from edge_ext.config import load_config
from edge_ext.extproc.server import serve_worker
from edge_ext.logs import setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-ext-worker")
    parser.add_argument("--config", required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--ready-fd", type=int, help="write b'1' here once serving (a successor during a reload)")
    args = parser.parse_args(argv)
    setup_logging()
    config = load_config(args.config)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(serve_worker(config, args.index, args.ready_fd))
    logging.getLogger("edge_ext.worker").debug("exit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
