"""The ``bonesim`` console script: Ctrl-C during start-up exits quietly (130), not with a traceback."""

from __future__ import annotations

import signal
import sys


def run() -> None:
    """Import the CLI with Ctrl-C mapped to a quiet exit, then hand Ctrl-C back to Python/click."""
    previous = signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    try:
        from bonesim.cli import main
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        main()
    except KeyboardInterrupt:  # outside click's own handling (e.g. while a lazy command imports)
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
