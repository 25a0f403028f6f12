"""Stack fallback > retry > circuit breaker > timeout > bulkhead around a dependency.

A flaky dependency is saved by retries; a dead one opens the breaker, the retries stop at
once, and the fallback answers. Run: python examples/retry_and_timeout.py   (about 0.3 s)
"""

import asyncio
from collections.abc import Awaitable, Callable

import engined


def build(name: str, behaviour: list[str]) -> Callable[[str], Awaitable[str]]:
    """Guard a fake dependency that follows ``behaviour``: "ok", "fail" or "hang" per call."""
    breaker = engined.CircuitBreaker(name, failure_threshold=3, recovery_timeout=30.0)
    breaker.add_listener(lambda e: print(f"    breaker {e.name}: {e.from_state} -> {e.to_state}"))
    calls = iter(behaviour)

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
        step = next(calls, "fail")
        print(f"    dependency called: {step}")
        if step == "hang":
            await asyncio.Event().wait()
        if step == "fail":
            raise ConnectionError("connection refused")
        return f"live price of {item}"

    return price


async def main() -> None:
    """Run the two scenarios and print what each layer did."""
    print("1. flaky: fails, times out, then answers; the retries hide it")
    flaky = build("flaky", ["fail", "hang", "ok"])
    print(f"  -> {await flaky('widget')}")

    print("2. dead: three failures open the breaker; the fourth attempt is refused, not retried")
    dead = build("dead", [])
    print(f"  -> {await dead('widget')}")


if __name__ == "__main__":
    asyncio.run(main())
