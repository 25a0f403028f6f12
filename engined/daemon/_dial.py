"""How ``engined status`` and ``engined probe`` open their channel, TLS included.

The flags are grpc_health_probe's (``--tls``, ``--tls-ca-cert``, ``--tls-client-cert``,
``--tls-client-key``, ``--tls-server-name``), so a probe command line carries over. A
flag that needs ``--tls`` without it, a key without its certificate, or a file that
cannot be read is a :class:`DialError` (bad arguments), before anything is dialled.
The channel never retries on its own (``grpc.enable_retries`` 0): each command makes one
attempt and reports what happened.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

__all__ = ["DialError", "Dial", "add_tls_flags"]


class DialError(Exception):
    """The TLS flags cannot make credentials; the message is one line."""


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """Add grpc_health_probe's TLS flags to ``parser``."""
    parser.add_argument("--tls", action="store_true", help="use TLS (default: plaintext)")
    parser.add_argument("--tls-ca-cert", type=Path, metavar="FILE", help="CA to verify the server")
    parser.add_argument("--tls-client-cert", type=Path, metavar="FILE", help="client cert (mTLS)")
    parser.add_argument("--tls-client-key", type=Path, metavar="FILE", help="client key (mTLS)")
    parser.add_argument(
        "--tls-server-name", metavar="NAME", help="the name the server's certificate must carry"
    )


def _read(flag: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        msg = f"{flag}: cannot read {str(path)!r}: {exc.strerror or type(exc).__name__}"
        raise DialError(msg) from None


@dataclass(frozen=True, slots=True)
class Dial:
    """A target and how to reach it."""

    target: str
    credentials: grpc.ChannelCredentials | None
    server_name: str | None

    @classmethod
    def from_args(cls, target: str, args: argparse.Namespace) -> Dial:
        """The channel settings the flags ask for.

        Raises:
            DialError: The flags contradict each other or a file cannot be read.
        """
        needs_tls = [
            flag
            for flag, value in (
                ("--tls-ca-cert", args.tls_ca_cert),
                ("--tls-client-cert", args.tls_client_cert),
                ("--tls-client-key", args.tls_client_key),
                ("--tls-server-name", args.tls_server_name),
            )
            if value is not None
        ]
        if needs_tls and not args.tls:
            msg = f"{needs_tls[0]} needs --tls"
            raise DialError(msg)
        if (args.tls_client_cert is None) != (args.tls_client_key is None):
            msg = "--tls-client-cert and --tls-client-key go together"
            raise DialError(msg)
        if not args.tls:
            return cls(target, None, None)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=_read("--tls-ca-cert", args.tls_ca_cert),
            private_key=_read("--tls-client-key", args.tls_client_key),
            certificate_chain=_read("--tls-client-cert", args.tls_client_cert),
        )
        return cls(target, credentials, args.tls_server_name)

    def channel(self, options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
        """A sync channel to the target, with extra channel ``options``; the caller closes it."""
        options = [("grpc.enable_retries", 0), *options]
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        if self.credentials is None:
            return grpc.insecure_channel(self.target, options=options)
        return grpc.secure_channel(self.target, self.credentials, options=options)
