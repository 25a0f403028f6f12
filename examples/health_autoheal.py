"""A component breaks, is healed, and recovers; the health manager prints each step.

The cache is an ``engined.testing.FakeDependency``: switched down, its check raises
ConnectionError; the heal switches it up again.

Run: python examples/health_autoheal.py   (about 1 s, no network)
"""

import asyncio

import engined
from engined.testing import FakeDependency


async def main() -> None:
    """Break a fake cache, let the manager notice, heal it and see it recover."""
    manager = engined.HealthCheckManager()
    cache = FakeDependency("cache", result=True)

    @manager.check("cache", component_type="cache", interval=0.1, failure_threshold=2)
    async def cache_alive() -> bool:
        return await cache.call_async("PING")

    @manager.healer("cache")
    async def restart_cache(trigger: engined.HealthCheckResult) -> None:
        print(f"  heal: restarting the cache (it reported {trigger.status}: {trigger.error})")
        cache.up()

    manager.add_listener(lambda event: print(f"  event: {_describe(event)}"))

    async with manager:
        await asyncio.sleep(0.25)
        print(f"1. running: overall {manager.snapshot().overall_status}")
        print("2. the cache crashes")
        cache.down()
        await asyncio.sleep(0.5)
        health = manager.snapshot()
        component = health.components["cache"]
        print(
            f"3. healed: overall {health.overall_status}, cache {component.status}, "
            f"heal attempts {component.heal_attempts}, checks {component.check_count}"
        )
    print(f"the cache answered {cache.successes} checks and failed {cache.failures}")


def _describe(event: engined.HealthEvent) -> str:
    if event.kind == "transition":
        return f"{event.component} {event.from_status} -> {event.to_status}"
    if event.kind == "heal_finished":
        outcome = "ok" if event.error is None else f"failed ({event.error})"
        return f"{event.component} heal {event.attempt} {outcome}"
    return f"{event.component} {event.kind} {event.attempt or ''}".rstrip()


if __name__ == "__main__":
    asyncio.run(main())
