"""The admin token that guards the RPCs which change state (DESIGN.md §6).

Admin RPCs (RunHealthCheck, ResetHeal, SetCircuitBreakerState) need the metadata
``authorization: Bearer <token>``. A missing, malformed or wrong value is UNAUTHENTICATED;
a server given no token refuses them all with PERMISSION_DENIED, so an admin surface is
never open by accident. The token is compared in constant time (``hmac.compare_digest``),
and neither the expected nor the offered token ever appears in a status detail or a log.
"""

from __future__ import annotations

import hmac
from typing import Any, Final

import grpc  # type: ignore[import-untyped, unused-ignore]
import grpc.aio  # type: ignore[import-untyped, unused-ignore]

from engined.rpc._server_errors import Refusal

__all__ = ["AdminAuth"]

_HEADER: Final = "authorization"
_SCHEME: Final = "bearer"


class AdminAuth:
    """Checks a call's bearer token against the configured admin token.

    Args:
        token: The admin token, or ``None`` to refuse every admin RPC.

    Raises:
        TypeError: ``token`` is neither a str nor ``None``.
        ValueError: ``token`` is empty, or has characters gRPC metadata cannot carry
            (only printable ASCII without spaces); the message never shows it.
    """

    __slots__ = ("_token",)

    def __init__(self, token: str | None) -> None:
        if token is not None and not isinstance(token, str):
            msg = f"admin_token must be a str or None, got {type(token).__name__}"
            raise TypeError(msg)
        if token is not None and not (token and all("!" <= ch <= "~" for ch in token)):
            msg = (
                "admin_token must be non-empty printable ASCII without spaces (what gRPC "
                "metadata can carry); pass None to turn admin RPCs off"
            )
            raise ValueError(msg)
        self._token = token.encode("ascii") if token is not None else None

    @property
    def enabled(self) -> bool:
        """Whether admin RPCs can be authorized at all (a token is configured)."""
        return self._token is not None

    def require(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Return if the call carries the admin token, else raise the refusal.

        Raises:
            Refusal: PERMISSION_DENIED when no token is configured; UNAUTHENTICATED when
                the call has no, several, malformed or a wrong ``authorization`` value.
        """
        if self._token is None:
            raise Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                "admin RPCs are disabled: this server has no admin token configured",
            )
        offered = _bearer(context)
        # compare_digest takes time that depends on the lengths only, never on where the
        # bytes differ; the offered token is encoded the same way as the expected one.
        if offered is None or not hmac.compare_digest(offered, self._token):
            raise Refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                "admin RPCs need the metadata 'authorization: Bearer <admin token>'",
            )


def _bearer(context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
    """The token of the one ``authorization: Bearer <token>`` value, or ``None``."""
    values = [
        value for key, value in (context.invocation_metadata() or ()) if key.lower() == _HEADER
    ]
    if len(values) != 1 or not isinstance(values[0], str):
        return None
    scheme, _, token = values[0].strip().partition(" ")
    if scheme.lower() != _SCHEME:
        return None
    return token.strip().encode("utf-8", "replace")
