"""Every example in examples/ runs, finishes in time, exits 0 and shows what it claims.

In time: under 3 s, or under 10 s for an example that starts a real server (LIMITS).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))

# Lines (or parts of lines) each example must print: the behaviour it exists to show.
# Only what is deterministic: no counts that depend on how the scheduler raced real time.
EXPECTED: dict[str, list[str]] = {
    "circuit_breaker.py": [
        "call 3: failed (inventory is down (call 3)), state=open",
        "call 4: rejected without calling",
        "the service saw 3 of the 5 calls",  # the breaker kept the rejected calls away
        "after the recovery timeout: state=half_open",
        "probe returned 42, state=closed",
        "rejected=2 times_opened=1; the service saw 4 calls",
    ],
    "retry_and_timeout.py": [
        "-> live price of widget",  # the retries hid two failures
        "cut short by the timeout",
        "breaker slow: closed -> open",
        "breaker dead: closed -> open",
        "-> cached price of widget (CircuitBreakerOpenError)",  # the fallback answered
        "calls that reached each: flaky=3 slow=3 dead=3",  # no retry after the breaker opened
    ],
    "health_autoheal.py": [
        "cache healthy -> unhealthy",
        "heal: restarting the cache (it reported unhealthy: ConnectionError)",
        "cache heal 1 ok",
        "cache unhealthy -> healthy",
        "3. healed: overall healthy, cache healthy, heal attempts 1",
    ],
    "tenant_router.py": [
        "umbrella (not a tenant): 404 UnknownTenantError",
        "breakers now: ['tenant:acme']",  # created on first use, none for an unknown name
        "globex request 4: 503 CircuitBreakerOpenError",
        "globex's backend saw 3 of 5 requests",
        "initech request 3: 429 BulkheadFullError",
        "acme: 20 of 20 ok while initech's slots were taken",  # one tenant's hang is its own
        "globex request 6: 200 ok",  # the probe after the recovery timeout
        "tenant:acme: closed, ok=22 failed=0 bulkhead_full=0 open_rejected=0; 22 of 22",
        "tenant:globex: closed, ok=1 failed=3 bulkhead_full=0 open_rejected=2; 6 of 6",
        "tenant:initech: closed, ok=2 failed=0 bulkhead_full=1 open_rejected=0; 3 of 3",
    ],
    "worker_agents.py": [
        "job-1 done by agent-1",  # three agents online, jobs go round
        "job-2 done by agent-2",
        "job-3 done by agent-3",
        "job-4 served by agent-1",  # in flight when agent-2 hung: one deadline, then agent-1
        "job-5 served by agent-1",
        "(agent-2 DEADLINE_EXCEEDED",
        "job-6 served by agent-1",
        "(agent-2 breaker open",  # refused at once: no deadline wait
        "breaker agent-2: open",
        "health: agent-2 healthy -> unhealthy",
        "while it is offline, jobs go to: agent-3, agent-1, agent-3, agent-1",
        "health: agent-2 unhealthy -> healthy",
        "job-12 probe: job-12 done by agent-2; breaker agent-2: closed",
        "jobs spread again: agent-1, agent-2, agent-3",
        "job-16 served by agent-1",  # in flight when agent-3 was killed
        "(agent-3 UNAVAILABLE",
        "health: agent-3 healthy -> unhealthy",
        "all agents killed",
    ],
    "redis_cache.py": [
        "1. redis up: cache healthy (PONG, SET and GET)",
        "2. redis killed (SIGKILL)",
        "cache healthy -> unhealthy",
        "cache unhealthy; reconnect attempts fail while it is down",
        "reconnect 1: failed (returned False)",  # Redis is down: the first reconnect fails
        ": reconnected",
        "cache unhealthy -> healthy",
        "healed by reconnect: cache healthy",
    ],
    "event_bus.py": [
        "e03: published",
        "e07: buffered (publish failed), buffer 4/8",  # 4 failures: still closed
        "breaker: closed -> open",
        "e08: buffered (publish failed), buffer 5/8",  # the 5th failure opened it
        "e09: buffered (rejected by the open breaker in",
        "e12: fallback buffer full (capacity 8): event e12 refused",  # loud, not dropped
        "the broker saw 5 failed publishes",
        "breaker: half_open -> closed",
        "replayed 8 buffered events, buffer 0/8",
        "4. stream: e01 e02 e03 e04 e05 e06 e07 e08 e09 e10 e11 e13",
        "every accepted event exactly once, in order: True",
    ],
    "engine_resilience.py": [
        "a. call 3: timed out, state=open",
        "a. call 4: rejected, state=open",
        "a. the server saw 3 connections: the rejected call never connected",
        "a. 10 calls at once while closed: 10 timed out",
        "a. 10 calls at once while open: 10 rejected",
        "a. 10 calls at once after the recovery timeout: 8 rejected, 2 timed out",  # 2 probes
        "b. api: healthy -> unhealthy",
        "b. heal: restarting the api (connection refused)",
        "b. api: unhealthy -> healthy",
        "c. the database went away: failed, failed, rejected; breaker open",
        "c. db heal 1 failed (ConnectionRefusedError)",  # the db was still down
        "c. db heal 2 ok",
        "c. db: unhealthy -> degraded",  # reconnected; the breaker is HALF_OPEN
        "c. the probe: get('c') -> c, breaker closed",
        "c. db: degraded -> healthy",
        "d. successful=100 failed=0 rejected=0 state=closed transitions=0",
        "e. opened at call 10 by the failure rate: rate=0.5, failures in a row=1 (threshold 3)",
    ],
}

# Examples that start a real server (a broker, subprocess agents) get 10 s, no more.
LIMITS: dict[str, float] = {
    "worker_agents.py": 8.0,
    "redis_cache.py": 10.0,  # starts, kills and restarts a real redis-server
    "event_bus.py": 10.0,  # the same, with an append-only file
}
DEFAULT_LIMIT = 3.0

pytestmark = pytest.mark.integration


def test_there_are_examples() -> None:
    """The examples folder is not empty (a glob typo would otherwise pass silently)."""
    assert EXAMPLES


def test_every_example_has_expectations_and_a_readme_entry() -> None:
    """Each example is listed here with what it must print, and in examples/README.md."""
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    names = [path.name for path in EXAMPLES]
    assert sorted(EXPECTED) == names
    for name in names:
        assert f"`{name}`" in readme, name


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quickly_and_cleanly(path: Path) -> None:
    """The example exits 0 in time, writes nothing to stderr and prints what it shows."""
    started = time.perf_counter()  # noqa: TID251  # real time: examples run on the real clock
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    elapsed = time.perf_counter() - started  # noqa: TID251
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    for expected in EXPECTED.get(path.name, []):
        assert expected in result.stdout, f"{path.name} did not print {expected!r}"
    limit = LIMITS.get(path.name, DEFAULT_LIMIT)
    assert limit <= 10.0, "no example may take more than 10 s"
    assert elapsed < limit, f"{path.name} took {elapsed:.2f}s (limit {limit:g}s)"
