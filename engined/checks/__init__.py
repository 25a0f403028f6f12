"""Built-in health checks and heal actions (DESIGN.md §7): what ``[[checks]]`` in a config names.

Checks (``type = ...`` in a config): :class:`TcpCheck` (``tcp``), :class:`HttpCheck`
(``http``), :class:`GrpcCheck` (``grpc``), :class:`CommandCheck` (``command``),
:class:`PythonCheck` (``python``) and :class:`RedisCheck` (``redis``). Heals:
:class:`CommandHeal`, :class:`PythonHeal` and :class:`RedisReconnectHeal` (``reconnect``,
for a redis check).
:data:`CHECK_TYPES` and :data:`HEAL_TYPES` map those type names to the classes.

Every check is an object with ``async def __call__(self) -> HealthCheckResult``, async so
that the manager's timeout cancels it cleanly (a thread could not be stopped); every heal
has ``async def __call__(self, trigger: HealthCheckResult) -> bool``. Every constructor
argument is checked at construction, with a ``TypeError`` or ``ValueError`` naming it,
so a bad config fails before anything starts. A target that cannot be reached is an
UNHEALTHY result with a few words of message, never an exception.

This package imports grpc (for :class:`GrpcCheck`); ``import engined`` does not import it.
docs/checks.md records the decisions beyond DESIGN.md.
"""

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from engined.checks._command import CommandCheck, CommandHeal
from engined.checks._grpc import GrpcCheck
from engined.checks._http import HttpCheck
from engined.checks._python import PythonCheck, PythonHeal, load_callable
from engined.checks._redis import RedisCheck, RedisReconnectHeal
from engined.checks._tcp import TcpCheck

__all__ = [
    "CHECK_TYPES",
    "CommandCheck",
    "CommandHeal",
    "GrpcCheck",
    "HEAL_TYPES",
    "HttpCheck",
    "PythonCheck",
    "PythonHeal",
    "RedisCheck",
    "RedisReconnectHeal",
    "TcpCheck",
    "load_callable",
]

CHECK_TYPES: Final[Mapping[str, type]] = MappingProxyType(
    {
        "tcp": TcpCheck,
        "http": HttpCheck,
        "grpc": GrpcCheck,
        "command": CommandCheck,
        "python": PythonCheck,
        "redis": RedisCheck,
    }
)
"""The check classes by their config ``type`` name."""

HEAL_TYPES: Final[Mapping[str, type]] = MappingProxyType(
    {
        "command": CommandHeal,
        "python": PythonHeal,
        "reconnect": RedisReconnectHeal,
    }
)
"""The heal classes by their config ``type`` name (``reconnect`` takes the redis check)."""
