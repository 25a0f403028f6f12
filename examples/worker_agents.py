"""A coordinator dispatches jobs to three worker agents over gRPC; one hangs, one dies.

Each agent is a grpc.aio server in its own process on 127.0.0.1: one bytes-in, bytes-out
method (``agents.Worker/Run``, no protos) and ``grpc.health.v1`` (grpcio-health-checking).
The coordinator guards each agent twice:

* a ``HealthCheckManager`` with a ``GrpcCheck`` per agent marks it offline after
  ``failure_threshold`` failed checks, and the coordinator stops routing to it;
* a per-agent breaker (``engined.rpc.open_aio_channel``: breaker ``rpc:<target>``, a
  deadline per attempt) opens after two failed calls, between check rounds or without
  any, and from then on refuses calls to that agent at once, without waiting on a deadline.

A job whose agent fails (deadline exceeded, connection refused, breaker open) is sent to
the next agent in turn, so a job may run twice: jobs must be idempotent.

Run: python examples/worker_agents.py   (about 4 s: it starts three agent processes,
and kills them by pid before it exits). ``python examples/worker_agents.py agent NAME PORT``
runs one agent (port 0: any free port, printed on the first line).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]
from grpc_health.v1._async import HealthServicer  # type: ignore[import-untyped]

import engined
from engined.checks import GrpcCheck
from engined.rpc import AioBreakerOpenRpcError, RpcPolicy, open_aio_channel

SERVICE = "agents.Worker"
RUN = f"/{SERVICE}/Run"
FAILOVER_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
# A short reconnect backoff (grpc's grows to 120 s): an agent restarted on its port is
# reached again within half a second.
RECONNECT = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 500))


# ----------------------------------------------------------------------------- the agent


async def serve_agent(name: str, port: int) -> None:
    """Serve jobs as agent ``name`` on 127.0.0.1:``port``; print the port, serve until killed."""

    async def run(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        job = json.loads(request)
        await asyncio.sleep(float(job.get("work", 0.0)))  # the job's work
        return f"{job['id']} done by {name}".encode()

    server = grpc.aio.server()
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
        run
    )  # bytes in, bytes out: no serializers
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Run": handler}),)
    )
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    print(bound, flush=True)
    await server.wait_for_termination()


@dataclass
class Agent:
    """An agent process started by :func:`start_agents`; signals go to its pid."""

    name: str
    process: subprocess.Popen[str]
    port: int

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def hang(self) -> None:
        """SIGSTOP: the process and its sockets stay, nothing answers."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`hang`."""
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_agents(names: Sequence[str], ports: Sequence[int] = ()) -> list[Agent]:
    """Start one agent process per name (in parallel); wait for each to print its port.

    Raises:
        RuntimeError: An agent did not start within 20 s (the ones started are killed).
    """
    wanted = list(ports) or [0] * len(names)
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "agent", name, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, port in zip(names, wanted, strict=True)
    ]
    agents = []
    try:
        for name, process in zip(names, processes, strict=True):
            line = _first_line(process, within=20.0)
            if not line.strip().isdigit():
                raise RuntimeError(f"agent {name} did not start: {line!r}")
            agents.append(Agent(name, process, int(line)))
    except BaseException:
        for process in processes:
            Agent("", process, 0).kill()
        raise
    return agents


def _first_line(process: subprocess.Popen[str], *, within: float) -> str:
    import selectors

    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout=within):
            return ""
    return process.stdout.readline()


@contextmanager
def agents_running(names: Sequence[str]) -> Iterator[list[Agent]]:
    """Agent processes for the block; each is killed by pid at the end, however it ends."""
    agents = start_agents(names)
    try:
        yield agents
    finally:
        for agent in agents:
            agent.kill()


# ----------------------------------------------------------------------------- the coordinator


@dataclass(frozen=True)
class Attempt:
    """One try of a job at one agent: ``ok``, a status code name, or ``breaker open``."""

    agent: str
    outcome: str
    seconds: float


@dataclass
class Dispatched:
    """A job's result: the agent that served it, its reply, every attempt and the total time."""

    job: str
    served_by: str | None
    reply: str | None
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0


class Coordinator:
    """Sends jobs to agents in turn, skipping offline ones, failing over on an agent's failure.

    Args:
        agents: Agent name -> ``host:port``.
        attempt_timeout: The deadline of one attempt at one agent, in seconds.
        breaker: ``CircuitBreaker`` settings for each agent's breaker (``rpc:<target>``).
        check_interval: Seconds between two health checks of an agent.
        check_timeout: Seconds one health check may take.
        failure_threshold: Failed checks in a row that mark an agent offline.
        clock: What durations are measured with.
    """

    def __init__(
        self,
        agents: dict[str, str],
        *,
        attempt_timeout: float = 0.4,
        breaker: dict[str, Any] | None = None,
        check_interval: float = 0.2,
        check_timeout: float = 0.15,
        failure_threshold: int = 2,
        clock: engined.Clock = engined.SYSTEM_CLOCK,
    ) -> None:
        self.agents = dict(agents)
        self.clock = clock
        self.policy = RpcPolicy(
            breaker=breaker or {"failure_threshold": 2, "recovery_timeout": 0.5},
            retry=None,  # no retry at the same agent: the coordinator fails over instead
            default_timeout=attempt_timeout,
        )
        self.health = engined.HealthCheckManager(clock=clock)
        self._checks = {
            name: GrpcCheck(target, name=name, clock=clock) for name, target in agents.items()
        }
        for name, check in self._checks.items():
            self.health.register(
                name,
                check,
                component_type="rpc",
                interval=check_interval,
                timeout=check_timeout,
                failure_threshold=failure_threshold,
            )
        self._runs: dict[str, Any] = {}
        self._turn = 0
        self._stack = AsyncExitStack()

    async def __aenter__(self) -> Coordinator:
        try:
            for name, target in self.agents.items():
                channel = await self._stack.enter_async_context(
                    open_aio_channel(target, self.policy, options=RECONNECT, clock=self.clock)
                )
                self._runs[name] = channel.unary_unary(RUN)  # no serializers: bytes as they are
            for check in self._checks.values():
                self._stack.push_async_callback(check.close)  # after the manager has stopped
            await self._stack.enter_async_context(self.health)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    def breaker(self, name: str) -> engined.CircuitBreaker:
        """The breaker guarding calls to agent ``name``."""
        breaker = engined.default_registry().get(f"rpc:{self.agents[name]}")
        assert breaker is not None
        return breaker

    def online(self, name: str) -> bool:
        """Whether the health checks have not marked agent ``name`` offline."""
        return self.health.component(name).status is not engined.HealthStatus.UNHEALTHY

    def _order(self, first: str | None) -> list[str]:
        """``first`` then the other online agents, or the online agents one further each time."""
        names = [name for name in self.agents if name != first and self.online(name)]
        if first is not None:
            return [first, *names]
        turn = self._turn % max(len(names), 1)
        self._turn += 1
        return names[turn:] + names[:turn]

    async def dispatch(
        self, job: str, *, work: float = 0.0, first: str | None = None
    ) -> Dispatched:
        """Run ``job`` on the next online agent (``first`` if given), failing over until served.

        ``first`` is tried even when offline (to show what happens to a job caught there).
        """
        began = self.clock.monotonic()
        result = Dispatched(job, None, None)
        request = json.dumps({"id": job, "work": work}).encode()
        for name in self._order(first):
            started = self.clock.monotonic()
            try:
                reply = await self._runs[name](request)
            except AioBreakerOpenRpcError:
                outcome = "breaker open"
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in FAILOVER_CODES:
                    raise  # the job itself is bad: another agent would say the same
                outcome = exc.code().name
            else:
                result.served_by, result.reply = name, reply.decode()
                outcome = "ok"
            result.attempts.append(Attempt(name, outcome, self.clock.monotonic() - started))
            if outcome == "ok":
                break
        result.seconds = self.clock.monotonic() - began
        return result


# ----------------------------------------------------------------------------- the story


def _served(result: Dispatched) -> str:
    tried = ", ".join(f"{a.agent} {a.outcome} {a.seconds:.2f}s" for a in result.attempts)
    return f"{result.job} served by {result.served_by} in {result.seconds:.2f}s ({tried})"


async def _until(condition: Any, within: float = 5.0) -> float:
    """Wait until ``condition()`` holds; return how long it took."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > within:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - began


async def story(agents: list[Agent]) -> None:
    """Dispatch jobs while one agent hangs and comes back and another dies."""
    a2, a3 = agents[1], agents[2]
    coordinator = Coordinator({a.name: a.target for a in agents})
    bound = 0.2 * 2 + 0.15  # check interval x failure threshold + check timeout
    offline_at: dict[str, float] = {}

    def on_health(event: engined.HealthEvent) -> None:
        if event.kind == "transition" and event.from_status is not engined.HealthStatus.UNKNOWN:
            print(f"  health: {event.component} {event.from_status} -> {event.to_status}")
            if event.to_status is engined.HealthStatus.UNHEALTHY:
                offline_at[event.component] = event.at

    coordinator.health.add_listener(on_health)
    async with coordinator:
        await _until(lambda: coordinator.health.snapshot().overall_status == "healthy")
        print("1. three agents online; jobs go round")
        for n in range(1, 4):
            print(f"  {(await coordinator.dispatch(f'job-{n}')).reply}")

        print(f"2. {a2.name} hangs (SIGSTOP) while running job-4")
        in_flight = asyncio.create_task(coordinator.dispatch("job-4", work=0.2, first=a2.name))
        await asyncio.sleep(0.05)
        stopped = time.monotonic()
        a2.hang()
        for n in range(4, 8):  # job-4, then three more sent to agent-2 first
            result = await (
                in_flight if n == 4 else coordinator.dispatch(f"job-{n}", first=a2.name)
            )
            print(f"  {_served(result)}")
        print(f"  breaker {a2.name}: {coordinator.breaker(a2.name).state}")
        await _until(lambda: a2.name in offline_at)
        took = offline_at[a2.name] - stopped
        print(f"  {a2.name} offline {took:.2f}s after it hung (bound {bound:.2f}s)")
        served = [(await coordinator.dispatch(f"job-{n}")).served_by for n in range(8, 12)]
        print(f"  while it is offline, jobs go to: {', '.join(map(str, served))}")

        print(f"3. {a2.name} resumes (SIGCONT)")
        a2.resume()
        healthy = engined.HealthStatus.HEALTHY
        await _until(lambda: coordinator.health.component(a2.name).status is healthy)
        await _until(lambda: coordinator.breaker(a2.name).state != engined.CircuitState.OPEN)
        probe = await coordinator.dispatch("job-12", first=a2.name)
        state = coordinator.breaker(a2.name).state
        print(f"  job-12 probe: {probe.reply}; breaker {a2.name}: {state}")
        served = [(await coordinator.dispatch(f"job-{n}")).served_by for n in range(13, 16)]
        print(f"  jobs spread again: {', '.join(sorted(map(str, served)))}")

        print(f"4. {a3.name} dies (SIGKILL) while running job-16")
        in_flight = asyncio.create_task(coordinator.dispatch("job-16", work=0.2, first=a3.name))
        await asyncio.sleep(0.05)
        killed = time.monotonic()
        a3.kill()
        result = await in_flight
        print(f"  {_served(result)}")
        await _until(lambda: a3.name in offline_at)
        took = offline_at[a3.name] - killed
        print(f"  {a3.name} offline {took:.2f}s after it died (bound {bound:.2f}s)")


def main() -> None:
    """Start three agents, tell the story, kill the agents."""
    if sys.argv[1:2] == ["agent"]:
        asyncio.run(serve_agent(sys.argv[2], int(sys.argv[3])))
        return
    with agents_running(["agent-1", "agent-2", "agent-3"]) as agents:
        asyncio.run(story(agents))
    print("all agents killed")


if __name__ == "__main__":
    main()
