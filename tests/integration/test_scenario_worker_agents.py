"""Scenario: a coordinator and worker agents over gRPC, agents in subprocesses on 127.0.0.1.

The agents and the coordinator are the ones ``examples/worker_agents.py`` ships (loaded
from that file): real grpc.aio agent processes, engined's per-agent breakers
(``open_aio_channel``) and a ``HealthCheckManager`` with a ``GrpcCheck`` per agent. Agents
are hung with SIGSTOP, killed with SIGKILL, resumed and restarted; every agent process is
killed by pid when a test ends, however it ends. Time is real here (``# noqa: TID251``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from engined import CircuitState, HealthEvent, HealthStatus, default_registry
from engined.checks._grpc import CHANNEL_OPTIONS

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "examples" / "worker_agents.py"
_spec = importlib.util.spec_from_file_location("worker_agents_example", EXAMPLE)
assert _spec is not None
assert _spec.loader is not None
wa: Any = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = wa  # dataclasses look their module up while the file executes
_spec.loader.exec_module(wa)

NAMES = ["agent-1", "agent-2", "agent-3"]
ATTEMPT = 0.5  # the deadline of one attempt at one agent
INTERVAL = 0.25  # seconds between two health checks of an agent
CHECK_TIMEOUT = 0.2
THRESHOLD = 2  # failed checks in a row that mark an agent offline
SLACK = 0.3  # scheduling on a loaded 2-CPU machine: event loop, listener, process signals
HUNG_BOUND = INTERVAL * THRESHOLD + CHECK_TIMEOUT + SLACK
DEAD_BOUND = INTERVAL * THRESHOLD + SLACK  # a dead port fails a check at once
RECONNECT_CAP = dict(CHANNEL_OPTIONS)["grpc.max_reconnect_backoff_ms"] / 1000


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    default_registry().clear()
    yield
    default_registry().clear()


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    """Three agent processes; every one in the list (restarts appended) is killed by pid."""
    started: list[Any] = wa.start_agents(NAMES)
    try:
        yield started
    finally:
        for agent in started:
            agent.kill()


class Transitions:
    """Records each health transition with the manager clock's time."""

    def __init__(self) -> None:
        self.events: list[HealthEvent] = []

    def __call__(self, event: HealthEvent) -> None:
        if event.kind == "transition":
            self.events.append(event)

    def first(self, component: str, status: HealthStatus, after: float) -> float | None:
        """When ``component`` first entered ``status`` after ``after``, or None."""
        for event in self.events:
            if event.component == component and event.to_status is status and event.at > after:
                return event.at
        return None


async def _until(condition: Callable[[], object], within: float = 10.0) -> None:
    deadline = time.monotonic() + within  # noqa: TID251 - integration tests wait on real time
    while not condition():
        if time.monotonic() > deadline:  # noqa: TID251
            msg = f"condition not met within {within} s"
            raise AssertionError(msg)
        await asyncio.sleep(0.005)  # noqa: TID251


@asynccontextmanager
async def coordinating(
    agents: list[Any], *, wait_healthy: bool = True, **settings: Any
) -> AsyncIterator[tuple[Any, Transitions]]:
    """The example's coordinator for ``agents``, once every agent is HEALTHY (by default)."""
    settings.setdefault("attempt_timeout", ATTEMPT)
    settings.setdefault("check_interval", INTERVAL)
    settings.setdefault("check_timeout", CHECK_TIMEOUT)
    settings.setdefault("failure_threshold", THRESHOLD)
    coordinator = wa.Coordinator({a.name: a.target for a in agents}, **settings)
    transitions = Transitions()
    coordinator.health.add_listener(transitions)
    async with coordinator:
        if wait_healthy:
            await _until(lambda: coordinator.health.snapshot().overall_status == "healthy")
        yield coordinator, transitions


async def _rejoined(coordinator: Any, name: str, within: float = 10.0) -> None:
    """Keep dispatching jobs until ``name``'s breaker has let a probe through and closed.

    Its health check may see the restarted agent before the coordinator's own channel has
    waited out its reconnect backoff (a loaded machine): that first probe then fails and
    the breaker opens again for its recovery timeout. Jobs keep flowing to the others
    meanwhile, as they would in production.
    """
    deadline = time.monotonic() + within  # noqa: TID251 - integration tests wait on real time
    n = 0
    while coordinator.breaker(name).state is not CircuitState.CLOSED:
        if time.monotonic() > deadline:  # noqa: TID251
            msg = f"{name} did not rejoin within {within} s"
            raise AssertionError(msg)
        result = await coordinator.dispatch(f"j-{n}")
        assert result.served_by is not None  # the pool serves every job meanwhile
        n += 1
        await asyncio.sleep(0.05)  # noqa: TID251


def _now() -> float:
    return time.monotonic()  # noqa: TID251 - the manager's events carry the same clock


def _outcomes(result: Any) -> list[tuple[str, str]]:
    return [(attempt.agent, attempt.outcome) for attempt in result.attempts]


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.95 * (len(ordered) - 1))]


async def test_jobs_are_spread_over_every_agent_in_turn(agents: list[Any]) -> None:
    """With every agent healthy, nine jobs go round: three to each agent, one attempt each."""
    async with coordinating(agents) as (coordinator, _):
        results = [await coordinator.dispatch(f"job-{n}") for n in range(9)]
    assert Counter(r.served_by for r in results) == {name: 3 for name in NAMES}
    assert all(len(r.attempts) == 1 for r in results)
    assert results[0].reply == "job-0 done by agent-1"


async def test_a_hung_agent_is_detected_offline_within_interval_times_threshold(
    agents: list[Any],
) -> None:
    """SIGSTOP: the agent's checks time out and it is UNHEALTHY within the bound; others stay."""
    async with coordinating(agents) as (coordinator, transitions):
        stopped = _now()
        agents[1].hang()
        await _until(lambda: transitions.first("agent-2", HealthStatus.UNHEALTHY, stopped))
        detected = transitions.first("agent-2", HealthStatus.UNHEALTHY, stopped)
        assert detected is not None
        took = detected - stopped
        print(f"hung agent detected offline after {took:.3f}s (bound {HUNG_BOUND:.2f}s)")
        assert CHECK_TIMEOUT * 0.9 <= took <= HUNG_BOUND
        assert coordinator.health.component("agent-2").last_result.error == "timeout"
        for name in ("agent-1", "agent-3"):
            assert coordinator.health.component(name).status is HealthStatus.HEALTHY


async def test_a_dead_agent_is_detected_offline_within_interval_times_threshold(
    agents: list[Any],
) -> None:
    """SIGKILL: the agent's checks fail at once with UNAVAILABLE; UNHEALTHY within the bound."""
    async with coordinating(agents) as (coordinator, transitions):
        killed = _now()
        agents[1].kill()
        await _until(lambda: transitions.first("agent-2", HealthStatus.UNHEALTHY, killed))
        detected = transitions.first("agent-2", HealthStatus.UNHEALTHY, killed)
        assert detected is not None
        took = detected - killed
        print(f"dead agent detected offline after {took:.3f}s (bound {DEAD_BOUND:.2f}s)")
        assert took <= DEAD_BOUND
        last = coordinator.health.component("agent-2").last_result
        assert last.message == "rpc failed: UNAVAILABLE"
        for name in ("agent-1", "agent-3"):
            assert coordinator.health.component(name).status is HealthStatus.HEALTHY


async def test_a_job_on_a_hung_agent_is_served_by_another_after_one_deadline(
    agents: list[Any],
) -> None:
    """A job in flight when its agent hangs times out once and is served by the next agent."""
    work = 0.2
    async with coordinating(agents) as (coordinator, _):
        job = asyncio.create_task(coordinator.dispatch("job-x", work=work, first="agent-2"))
        await asyncio.sleep(0.05)  # noqa: TID251 - the job is running on agent-2
        agents[1].hang()
        result = await job
    print(f"failover after a hang took {result.seconds:.3f}s ({_outcomes(result)})")
    assert _outcomes(result) == [("agent-2", "DEADLINE_EXCEEDED"), ("agent-1", "ok")]
    assert (result.served_by, result.reply) == ("agent-1", "job-x done by agent-1")
    assert ATTEMPT * 0.95 <= result.attempts[0].seconds <= ATTEMPT + 0.15
    assert result.seconds <= ATTEMPT + work + 0.25


async def test_a_job_on_a_killed_agent_is_served_by_another_without_waiting(
    agents: list[Any],
) -> None:
    """A job in flight when its agent dies fails with UNAVAILABLE at once and is served next."""
    work = 0.2
    async with coordinating(agents) as (coordinator, _):
        job = asyncio.create_task(coordinator.dispatch("job-y", work=work, first="agent-2"))
        await asyncio.sleep(0.05)  # noqa: TID251 - the job is running on agent-2
        agents[1].kill()
        result = await job
    print(f"failover after a kill took {result.seconds:.3f}s ({_outcomes(result)})")
    assert _outcomes(result) == [("agent-2", "UNAVAILABLE"), ("agent-1", "ok")]
    assert result.served_by == "agent-1"
    assert result.attempts[0].seconds < ATTEMPT / 2
    assert result.seconds < ATTEMPT + work


async def test_a_hung_agent_slows_no_other_agent_and_its_open_breaker_refuses_at_once(
    agents: list[Any],
) -> None:
    """While agent-2 hangs, calls to the others stay fast; once its breaker opens, no waits."""
    slow_checks = {"check_interval": 60.0, "check_timeout": 5.0}  # routing by breakers alone
    breaker = {"failure_threshold": 2, "recovery_timeout": 60.0}
    async with coordinating(agents, wait_healthy=False, breaker=breaker, **slow_checks) as (
        coordinator,
        _,
    ):
        await coordinator.dispatch("warm-up-1")  # connections made before the clock runs
        await coordinator.dispatch("warm-up-2")
        await coordinator.dispatch("warm-up-3")
        agents[1].hang()
        wave1 = await asyncio.gather(*(coordinator.dispatch(f"a-{n}") for n in range(12)))
        hung = [a for r in wave1 for a in r.attempts if a.agent == "agent-2"]
        healthy = [a.seconds for r in wave1 for a in r.attempts if a.agent != "agent-2"]
        assert {a.outcome for a in hung} == {"DEADLINE_EXCEEDED"}
        assert all(r.served_by in ("agent-1", "agent-3") for r in wave1)
        assert coordinator.breaker("agent-2").state is CircuitState.OPEN
        failed = coordinator.breaker("agent-2").metrics.failed_calls

        wave2 = await asyncio.gather(*(coordinator.dispatch(f"b-{n}") for n in range(12)))
        refused = [a for r in wave2 for a in r.attempts if a.agent == "agent-2"]
        totals = [r.seconds for r in wave2]
        metrics = coordinator.breaker("agent-2").metrics
    print(
        f"p95 of calls to healthy agents while agent-2 hung: {_p95(healthy):.3f}s "
        f"({len(hung)} calls waiting on agent-2); after its breaker opened: slowest refusal "
        f"{max(a.seconds for a in refused):.4f}s, p95 job {_p95(totals):.3f}s"
    )
    assert len(hung) == 4  # every third job went to agent-2 first
    assert _p95(healthy) < ATTEMPT * 0.4
    assert len(refused) == 4
    assert {a.outcome for a in refused} == {"breaker open"}
    assert max(a.seconds for a in refused) < 0.05
    assert _p95(totals) < ATTEMPT * 0.4
    assert all(r.served_by in ("agent-1", "agent-3") for r in wave2)
    assert (metrics.failed_calls, metrics.rejected_calls) == (failed, 4)


async def test_a_resumed_agent_turns_healthy_its_breaker_closes_and_it_gets_work_again(
    agents: list[Any],
) -> None:
    """After SIGCONT the agent is HEALTHY again, the breaker's probe closes it, work spreads."""
    async with coordinating(agents, breaker={"failure_threshold": 2, "recovery_timeout": 0.5}) as (
        coordinator,
        transitions,
    ):
        stopped = _now()
        agents[1].hang()
        for n in range(2):
            result = await coordinator.dispatch(f"h-{n}", first="agent-2")
            assert _outcomes(result)[0] == ("agent-2", "DEADLINE_EXCEEDED")
        assert coordinator.breaker("agent-2").state is CircuitState.OPEN
        await _until(lambda: transitions.first("agent-2", HealthStatus.UNHEALTHY, stopped))
        offline = [await coordinator.dispatch(f"o-{n}") for n in range(4)]
        assert [_outcomes(r) for r in offline] == [[("agent-1", "ok")], [("agent-3", "ok")]] * 2

        resumed = _now()
        agents[1].resume()
        await _until(lambda: transitions.first("agent-2", HealthStatus.HEALTHY, resumed))
        back = transitions.first("agent-2", HealthStatus.HEALTHY, resumed)
        assert back is not None
        print(f"resumed agent healthy again after {back - resumed:.3f}s")
        assert back - resumed <= INTERVAL + SLACK
        await _until(lambda: coordinator.breaker("agent-2").state is not CircuitState.OPEN)
        assert coordinator.breaker("agent-2").state is CircuitState.HALF_OPEN
        results = [await coordinator.dispatch(f"r-{n}") for n in range(6)]
        metrics = coordinator.breaker("agent-2").metrics
    assert Counter(r.served_by for r in results) == {name: 2 for name in NAMES}
    assert all(len(r.attempts) == 1 for r in results)
    assert (metrics.state, metrics.times_opened) == (CircuitState.CLOSED, 1)


async def test_a_killed_agent_restarted_on_its_port_rejoins_the_pool(agents: list[Any]) -> None:
    """An agent killed and started again on its port is HEALTHY again and gets work again."""
    async with coordinating(agents, breaker={"failure_threshold": 2, "recovery_timeout": 0.5}) as (
        coordinator,
        transitions,
    ):
        killed = _now()
        agents[1].kill()
        await _until(lambda: transitions.first("agent-2", HealthStatus.UNHEALTHY, killed))
        for n in range(2):
            result = await coordinator.dispatch(f"k-{n}", first="agent-2")
            assert _outcomes(result) == [("agent-2", "UNAVAILABLE"), ("agent-1", "ok")]
        assert coordinator.breaker("agent-2").state is CircuitState.OPEN

        agents.extend(wa.start_agents(["agent-2"], [agents[1].port]))  # killed by the fixture
        serving = _now()
        await _until(lambda: transitions.first("agent-2", HealthStatus.HEALTHY, serving))
        back = transitions.first("agent-2", HealthStatus.HEALTHY, serving)
        assert back is not None
        print(f"restarted agent healthy again {back - serving:.3f}s after it served")
        # GrpcCheck's channel waits out grpc's reconnect backoff, at most 5 s (CHANNEL_OPTIONS).
        assert back - serving <= RECONNECT_CAP + INTERVAL + CHECK_TIMEOUT + SLACK
        await _rejoined(coordinator, "agent-2")
        results = [await coordinator.dispatch(f"r-{n}") for n in range(6)]
        metrics = coordinator.breaker("agent-2").metrics
    assert Counter(r.served_by for r in results) == {name: 2 for name in NAMES}
    assert all(len(r.attempts) == 1 for r in results)
    assert metrics.state is CircuitState.CLOSED
