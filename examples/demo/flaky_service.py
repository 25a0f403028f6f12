"""A pretend service for examples/engined.toml that breaks on its own and is healed by a restart.

Its whole state is one file holding the wall-clock time of the last "restart":

- ``flaky_service.py check``: exit 0 (healthy) for the first 20 s after a restart, exit 1
  (degraded: "running hot") until 30 s, then exit 2 (unhealthy: "crashed"); also exit 2
  when it was never started.
- ``flaky_service.py heal``: "restarts" it (writes the time) and exits 0.

So under ``engined serve --config examples/engined.toml`` it goes UNHEALTHY, HEALING,
HEALTHY, DEGRADED and UNHEALTHY again about every 35 s, with nothing running in the
background. Each call returns at once. The file is ``engined-demo-<uid>.state`` in the
temporary directory unless ``--state FILE`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HEALTHY_FOR = 20.0
DEGRADED_UNTIL = 30.0


def _default_state() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"engined-demo-{uid}.state"


def check(state: Path) -> int:
    """Exit status of the check: 0 healthy, 1 degraded, 2 unhealthy."""
    try:
        restarted = float(state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        print("crashed: never started")
        return 2
    up = time.time() - restarted
    if up < HEALTHY_FOR:
        print(f"serving, up {up:.0f}s")
        return 0
    if up < DEGRADED_UNTIL:
        print(f"running hot, up {up:.0f}s")
        return 1
    print(f"crashed {up - DEGRADED_UNTIL:.0f}s ago")
    return 2


def heal(state: Path) -> int:
    """Restart: write the time; exit 0."""
    state.write_text(f"{time.time():.3f}\n", encoding="utf-8")
    component = os.environ.get("ENGINED_COMPONENT", "flaky_service")
    print(f"restarted {component}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``check`` or ``heal``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("action", choices=("check", "heal"))
    parser.add_argument("--state", type=Path, default=_default_state(), metavar="FILE")
    args = parser.parse_args(argv)
    return check(args.state) if args.action == "check" else heal(args.state)


if __name__ == "__main__":
    sys.exit(main())
