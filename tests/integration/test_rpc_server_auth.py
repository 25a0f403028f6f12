"""The admin token on engined.v1's admin RPCs: UNAUTHENTICATED, PERMISSION_DENIED, allowed."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from rpc_server_support import ADMIN, TOKEN, Switch, breakers, failure, manager_with, serve

import engined
from engined import CircuitBreakerRegistry, HealthCheckManager
from engined.testing import FakeClock
from engined.v1 import engined_pb2 as pb

pytestmark = pytest.mark.integration

_ADMIN_CALLS = [
    ("RunHealthCheck", pb.RunHealthCheckRequest(name="db")),
    ("ResetHeal", pb.ResetHealRequest(name="db")),
    (
        "SetCircuitBreakerState",
        pb.SetCircuitBreakerStateRequest(name="pay", action=pb.CIRCUIT_BREAKER_ACTION_FORCE_OPEN),
    ),
]


@pytest.fixture
def admin_world() -> tuple[HealthCheckManager, CircuitBreakerRegistry, Switch]:
    """A manager with component 'db' and a registry with breaker 'pay'."""
    check = Switch()
    return manager_with(db=check), breakers(FakeClock()), check


@pytest.mark.parametrize(("method", "request_"), _ADMIN_CALLS)
@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token"),),
        (("authorization", f"Basic {TOKEN}"),),
        (("authorization", TOKEN),),
        (("authorization", f"Bearer {TOKEN}x"),),
        (("authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {TOKEN}")),
    ],
    ids=["missing", "wrong", "basic", "no-scheme", "longer", "twice"],
)
async def test_admin_rpcs_without_the_right_token_are_unauthenticated(
    admin_world: tuple[HealthCheckManager, CircuitBreakerRegistry, Switch],
    method: str,
    request_: Any,
    metadata: tuple[tuple[str, str], ...],
) -> None:
    """A missing, malformed or wrong bearer token is UNAUTHENTICATED and changes nothing."""
    manager, registry, check = admin_world
    async with serve(manager, registry=registry) as served:
        code, details = await failure(getattr(served.engined, method)(request_, metadata=metadata))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert TOKEN not in details
    assert check.runs == 0
    assert registry.get("pay").state is engined.CircuitState.OPEN


@pytest.mark.parametrize(("method", "request_"), _ADMIN_CALLS)
async def test_admin_rpcs_with_the_right_token_succeed(
    admin_world: tuple[HealthCheckManager, CircuitBreakerRegistry, Switch],
    method: str,
    request_: Any,
) -> None:
    """The configured token, in any case of the Bearer scheme, authorizes every admin RPC."""
    manager, registry, _ = admin_world
    async with serve(manager, registry=registry) as served:
        metadata = (("authorization", f"bearer {TOKEN}"),)
        await getattr(served.engined, method)(request_, metadata=metadata, timeout=5)


@pytest.mark.parametrize(("method", "request_"), _ADMIN_CALLS)
async def test_admin_rpcs_are_permission_denied_when_no_token_is_configured(
    admin_world: tuple[HealthCheckManager, CircuitBreakerRegistry, Switch],
    method: str,
    request_: Any,
) -> None:
    """A server without an admin token refuses admin RPCs, whatever token the caller sends."""
    manager, registry, check = admin_world
    async with serve(manager, registry=registry, admin_token=None) as served:
        code, _ = await failure(getattr(served.engined, method)(request_, metadata=ADMIN))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert check.runs == 0


async def test_auth_is_checked_before_arguments() -> None:
    """Without the token, an unknown name is UNAUTHENTICATED, not NOT_FOUND: names stay hidden."""
    async with serve(manager_with()) as served:
        code, _ = await failure(served.engined.ResetHeal(pb.ResetHealRequest(name="nope")))
    assert code is grpc.StatusCode.UNAUTHENTICATED


async def test_read_only_rpcs_need_no_token() -> None:
    """GetSystemHealth and ListCircuitBreakers answer without metadata even with admin off."""
    async with serve(manager_with(db=Switch()), admin_token=None) as served:
        await served.engined.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=5)
        await served.engined.ListCircuitBreakers(pb.ListCircuitBreakersRequest(), timeout=5)
