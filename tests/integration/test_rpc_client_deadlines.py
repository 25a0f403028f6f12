"""One deadline across attempts, on the real clock: what the server sees each attempt get."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator

import grpc
import grpc.aio
import pytest
from rpc_testserver import UNARY, Running, ServerThread, plan, raw, serving

from engined import default_registry
from engined.rpc import RpcPolicy, open_aio_channel, open_channel

pytestmark = pytest.mark.integration

C = grpc.StatusCode
NO_DEADLINE = 9.223372036854776e18  # what ServicerContext.time_remaining() says without one
RETRY = {"max_attempts": 5, "initial_backoff": 0.001, "max_backoff": 0.001}


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture
async def server() -> AsyncIterator[Running]:
    async with serving() as running:
        yield running


def _remaining(server: Running, key: str) -> list[float]:
    seen = [s.time_remaining for s in server.scripted.attempts(key)]
    assert all(value is not None for value in seen), seen
    return [value for value in seen if value is not None]


async def test_each_attempt_gets_only_the_time_left(server: Running) -> None:
    """Attempts of 0.2 s under a 1.5 s deadline are sent with about 1.5, 1.3, 1.1 and 0.9 s."""
    script = plan("left", ["UNAVAILABLE"] * 3 + ["OK"], delays=[0.2], pushback=["0"])
    async with open_aio_channel(server.target, RpcPolicy(retry=RETRY)) as channel:
        assert await raw(channel, UNARY)(b"x", metadata=script, timeout=1.5) == b"reply:x"
    remaining = _remaining(server, "left")
    assert len(remaining) == 4
    assert remaining[0] <= 1.55
    for before, after in itertools.pairwise(remaining):
        assert 0.15 <= before - after <= 0.6, remaining


async def test_the_deadline_ends_the_retries(server: Running) -> None:
    """Attempts of 0.4 s under a 1 s deadline: the third runs out of time, none follows."""
    script = plan("out", ["UNAVAILABLE"], delays=[0.4], pushback=["0"])
    began = time.monotonic()  # noqa: TID251 - real time on purpose
    async with open_aio_channel(server.target, RpcPolicy(retry=RETRY)) as channel:
        call = raw(channel, UNARY)(b"x", metadata=script, timeout=1.0)
        assert await call.code() is C.DEADLINE_EXCEEDED
    elapsed = time.monotonic() - began  # noqa: TID251
    assert len(server.scripted.attempts("out")) == 3
    assert elapsed < 1.5


async def test_backoff_sleeps_count_against_the_deadline(server: Running) -> None:
    """A 300 ms pushback under a 0.5 s deadline leaves the retry about 0.2 s, and no third try."""
    script = plan("sleep", ["UNAVAILABLE"], pushback=["300"])
    async with open_aio_channel(server.target, RpcPolicy(retry=RETRY)) as channel:
        call = raw(channel, UNARY)(b"x", metadata=script, timeout=0.5)
        assert await call.code() is C.UNAVAILABLE
    remaining = _remaining(server, "sleep")
    assert len(remaining) == 2
    assert remaining[1] <= 0.25


async def test_an_inherited_no_deadline_is_not_passed_on(server: Running) -> None:
    """A server's time_remaining() without a deadline (9.2e18 s) passed as timeout= still works.

    Guards grpc/grpc#26236 (such a timeout fails at once with DEADLINE_EXCEEDED) and
    grpc/grpc#9423 (time_remaining() is not None without a deadline).
    """
    async with open_aio_channel(server.target, RpcPolicy()) as channel:
        reply = await raw(channel, UNARY)(b"x", metadata=plan("inf"), timeout=NO_DEADLINE)
    assert reply == b"reply:x"
    assert [s.time_remaining for s in server.scripted.attempts("inf")] == [None]


def test_an_inherited_no_deadline_is_not_passed_on_sync() -> None:
    """The sync stack clamps a no-deadline timeout too (grpc/grpc#26236, grpc/grpc#9423)."""
    with ServerThread() as running, open_channel(running.target, RpcPolicy()) as channel:
        assert raw(channel, UNARY)(b"x", metadata=plan("inf"), timeout=NO_DEADLINE) == b"reply:x"
        assert [s.time_remaining for s in running.scripted.attempts("inf")] == [None]


async def test_default_timeout_applies_when_the_caller_gives_none(server: Running) -> None:
    """default_timeout=2 sends the first attempt with about 2 s; a caller's timeout wins."""
    async with open_aio_channel(server.target, RpcPolicy(default_timeout=2.0)) as channel:
        await raw(channel, UNARY)(b"x", metadata=plan("default"))
        await raw(channel, UNARY)(b"x", metadata=plan("own"), timeout=7.0)
    (default,) = _remaining(server, "default")
    (own,) = _remaining(server, "own")
    assert 1.5 < default <= 2.05  # grpc rounds deadlines up a little
    assert 6.5 < own <= 7.05


async def test_open_aio_channel_turns_grpc_retries_off(server: Running) -> None:
    """Even with a retrying service config and grpc.enable_retries=1, grpc adds no attempt."""
    config = {
        "methodConfig": [
            {
                "name": [{"service": "test.Scripted"}],
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.01s",
                    "backoffMultiplier": 1,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
    options = [("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)]
    policy = RpcPolicy(retry=None)
    async with open_aio_channel(server.target, policy, options=options) as channel:
        call = raw(channel, UNARY)(b"x", metadata=plan("native", ["UNAVAILABLE", "OK"]))
        assert await call.code() is C.UNAVAILABLE
    assert len(server.scripted.attempts("native")) == 1
