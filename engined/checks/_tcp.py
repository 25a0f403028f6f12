"""The ``tcp`` check: can a connection to host:port be opened?"""

from __future__ import annotations

from engined._clock import SYSTEM_CLOCK, Clock
from engined.checks._common import (
    ConnectError,
    Identity,
    close_quietly,
    connect,
    format_host_port,
    millis,
    parse_host_port,
)
from engined.core._health_model import ComponentType, HealthCheckResult, HealthStatus

__all__ = ["TcpCheck"]


class TcpCheck:
    """HEALTHY when a TCP connection to ``target`` opens; the connection is closed at once.

    Nothing is sent: the check proves the port accepts, no more. An unreachable target
    (refused, unresolvable, unreachable) is UNHEALTHY with a few words saying why, never
    an exception; one that hangs is bounded by the manager's timeout, which cancels the
    connect cleanly.

    Args:
        target: ``"host:port"``, or ``"[v6addr]:port"`` for an IPv6 address.
        name: The component name put on results (the manager uses the registered one).
        component_type: The component type put on results.
        clock: What the connect latency is measured with.

    Raises:
        TypeError: An argument has the wrong type (the message names it).
        ValueError: ``target`` is not host:port with a port in 1..65535, or another
            argument has a bad value.
    """

    __slots__ = ("_host", "_id", "_port", "target")

    def __init__(
        self,
        target: str,
        *,
        name: str = "tcp",
        component_type: ComponentType | str = ComponentType.SERVICE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._host, self._port = parse_host_port("target", target)
        self.target = format_host_port(self._host, self._port)
        self._id = Identity(name, component_type, clock)

    async def __call__(self) -> HealthCheckResult:
        """Connect, close, and report the connect latency in ``details["latency_ms"]``."""
        started = self._id.clock.monotonic()
        try:
            _, writer = await connect(self._host, self._port)
        except ConnectError as exc:
            return self._id.result(HealthStatus.UNHEALTHY, exc.reason, {"target": self.target})
        latency = millis(self._id.clock.monotonic() - started)
        await close_quietly(writer)
        return self._id.result(
            HealthStatus.HEALTHY,
            f"connected in {latency:.1f} ms",
            {"target": self.target, "latency_ms": latency},
        )

    def __repr__(self) -> str:
        return f"TcpCheck({self.target!r})"
