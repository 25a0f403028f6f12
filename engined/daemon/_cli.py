"""The ``engined`` command: ``serve``, ``status``, ``probe`` and ``check-config``.

Every refusal is one line on stderr, never a traceback: a bad flag (argparse's own
errors included), a bad config, a port in use. Exit statuses:

- ``serve``: 0 after a graceful stop, 1 when it cannot start (a port in use), 2 for a
  bad flag or config;
- ``check-config``: 0 and a one-line summary, or 2;
- ``status``: 0 when it read the daemon, 1 when it could not, 2 for a bad flag;
  ``status --watch`` runs until Ctrl-C or SIGTERM and then exits 0;
- ``probe``: grpc_health_probe's 0/1/2/3/4 (:mod:`engined.daemon._probe`); bad flags are 1
  there, as grpc_health_probe has it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["build_parser", "main"]

DEFAULT_TARGET = "127.0.0.1:9003"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line and exits with ``exit_code``."""

    def __init__(self, *args: Any, exit_code: int = 2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exit_code = exit_code

    def error(self, message: str) -> NoReturn:
        self.exit(self.exit_code, f"{self.prog}: error: {' '.join(message.split())}\n")


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"not a port number: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 <= value <= 65535:
        msg = f"must be 0-65535, got {value}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"not a number of seconds: {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if not 0 < value < float("inf"):
        msg = f"must be > 0 seconds, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


MIN_INTERVAL = 0.1


def _interval(text: str) -> float:
    """``--interval``: finite and at least 0.1 s, ``watch``'s own floor.

    A faster refresh is more than anyone reads and only loads the daemon.
    """
    value = _seconds(text)
    if value < MIN_INTERVAL:
        msg = f"must be >= {MIN_INTERVAL} seconds, got {text}"
        raise argparse.ArgumentTypeError(msg)
    return value


def build_parser() -> tuple[_Parser, dict[str, _Parser]]:
    """The top-level parser and each subcommand's parser, by name."""
    from engined.daemon._dial import add_tls_flags

    parser = _Parser(prog="engined", description="engined: health checks that heal, served.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub: dict[str, _Parser] = {}

    serve = sub["serve"] = commands.add_parser("serve", help="run the daemon")
    serve.add_argument("--config", type=Path, metavar="FILE", help="TOML config (default: none)")
    serve.add_argument("--host", help="address to bind (default: [server] host, 127.0.0.1)")
    serve.add_argument("--port", type=_port, help="gRPC port (default: [server] port, 9003)")
    serve.add_argument(
        "--metrics-port", type=_port, help="HTTP port (default: [server] metrics_port, 9004)"
    )
    serve.add_argument("--log-format", choices=("text", "json"), default="text")

    check = sub["check-config"] = commands.add_parser("check-config", help="validate a config")
    check.add_argument("file", type=Path, metavar="FILE")

    status = sub["status"] = commands.add_parser("status", help="show a daemon's health")
    status.add_argument("--target", default=DEFAULT_TARGET, metavar="HOST:PORT")
    status.add_argument("--json", action="store_true", help="print the replies as JSON")
    status.add_argument("--timeout", type=_seconds, default=5.0, metavar="S")
    status.add_argument(
        "--watch", action="store_true", help="redraw every --interval seconds until Ctrl-C"
    )
    status.add_argument(
        "--interval", type=_interval, metavar="S", help="seconds between --watch frames (default 1)"
    )
    status.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the statuses (default auto: on a terminal, unless NO_COLOR is set)",
    )
    add_tls_flags(status)

    probe = sub["probe"] = commands.add_parser(
        "probe", help="grpc_health_probe: exit 0 when SERVING", exit_code=1
    )
    probe.add_argument("--addr", default=DEFAULT_TARGET, metavar="HOST:PORT")
    probe.add_argument("--service", default="", metavar="NAME", help='default "" (overall)')
    probe.add_argument("--connect-timeout", type=_seconds, default=1.0, metavar="S")
    probe.add_argument("--rpc-timeout", type=_seconds, default=1.0, metavar="S")
    add_tls_flags(probe)
    return parser, sub


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``engined`` command line; return the exit status."""
    parser, sub = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"engined {version('engined')}")
        return 0
    if args.command is None:
        parser.error("a command is required: serve, status, probe or check-config")
    if extra:
        sub[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "serve":
        from engined.daemon._run import serve

        return serve(
            args.config,
            overrides={
                key: value
                for key in ("host", "port", "metrics_port")
                if (value := getattr(args, key)) is not None
            },
            log_format=args.log_format,
        )
    if args.command == "check-config":
        from engined.daemon._run import check_config

        return check_config(args.file)
    return _client(args, sub[args.command])


def _client(args: argparse.Namespace, parser: _Parser) -> int:
    from engined.daemon._dial import Dial, DialError

    target = args.addr if args.command == "probe" else args.target
    try:
        dial = Dial.from_args(target, args)
    except DialError as exc:
        parser.error(str(exc))
    if args.command == "probe":
        from engined.daemon._probe import probe

        return probe(
            dial,
            args.service,
            connect_timeout=args.connect_timeout,
            rpc_timeout=args.rpc_timeout,
        )
    if args.interval is not None and not args.watch:
        parser.error("--interval needs --watch")
    from engined.daemon._ansi import color_wanted

    color = not args.json and color_wanted(args.color, sys.stdout, os.environ)
    if args.watch:
        from engined.daemon._watch import watch

        return watch(
            dial,
            timeout=args.timeout,
            interval=args.interval if args.interval is not None else 1.0,
            json_lines=args.json,
            color=color,
        )
    from engined.daemon._status import status

    return status(dial, timeout=args.timeout, as_json_output=args.json, color=color)


if __name__ == "__main__":  # pragma: no cover - python -m engined is the usual way
    sys.exit(main())
