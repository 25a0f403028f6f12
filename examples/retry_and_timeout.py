"""Stack fallback > retry > circuit breaker > timeout > bulkhead around a dependency.

Three fake dependencies (``engined.testing.FakeDependency``) show each layer at work: a
flaky one is saved by retries; a slow one has every attempt cut short by the timeout
until the breaker opens; a dead one opens the breaker, the retries stop at once, and the
fallback answers. Run: python examples/retry_and_timeout.py   (about 0.4 s)
"""

import asyncio
from collections.abc import Awaitable, Callable

import engined
from engined.testing import FakeDependency


def build(dependency: FakeDependency[str]) -> Callable[[str], Awaitable[str]]:
    """Guard ``dependency`` with the whole stack; return the guarded price lookup."""
    name = dependency.name
    breaker = engined.CircuitBreaker(name, failure_threshold=3, recovery_timeout=30.0)
    breaker.add_listener(lambda e: print(f"    breaker {e.name}: {e.from_state} -> {e.to_state}"))

    async def cached(exc: Exception, item: str) -> str:
        return f"cached price of {item} ({type(exc).__name__})"

    @engined.fallback(cached, on=(ConnectionError, TimeoutError, engined.CircuitBreakerOpenError))
    @engined.retry(
        on=(ConnectionError, TimeoutError),
        attempts=4,
        backoff=engined.Backoff(initial=0.01, multiplier=2.0, max=0.05),
    )
    @breaker
    @engined.timeout(0.05)
    @engined.bulkhead(name, max_concurrent=4)
    async def price(item: str) -> str:
        print(f"    attempt reaches {name} (its call {dependency.calls + 1})")
        try:
            return f"{await dependency.call_async(item)} of {item}"
        except ConnectionError as err:
            print(f"    {type(err).__name__}: {err}")
            raise
        except asyncio.CancelledError:
            print("    cut short by the timeout")
            raise

    return price


async def main() -> None:
    """Run the three scenarios and print what each layer did."""
    print("1. flaky: refuses twice, then answers; the retries hide it")
    flaky = FakeDependency("flaky", result="live price", script=[ConnectionError, ConnectionError])
    print(f"  -> {await build(flaky)('widget')}")

    print("2. slow: every call takes 1 s; the timeout cuts each attempt at 0.05 s,")
    print("   three timeouts open the breaker and the fourth attempt is refused")
    slow = FakeDependency("slow", result="live price", latency=1.0)
    print(f"  -> {await build(slow)('widget')}")

    print("3. dead: three failures open the breaker; the fourth attempt is refused, not retried")
    dead = FakeDependency("dead", result="live price")
    dead.down()
    print(f"  -> {await build(dead)('widget')}")
    print(f"calls that reached each: flaky={flaky.calls} slow={slow.calls} dead={dead.calls}")


if __name__ == "__main__":
    asyncio.run(main())
