"""Trip a circuit breaker on a failing dependency, watch it reject, probe and recover.

The dependency is an ``engined.testing.FakeDependency``, switched down and up again; its
call count shows which calls the breaker kept away from it.

Run: python examples/circuit_breaker.py   (about 0.5 s, no network)
"""

import time

import engined
from engined.testing import FakeDependency


def main() -> None:
    """Take a fake inventory service down until the breaker opens, then let it recover."""
    inventory = FakeDependency("inventory", result=42)
    breaker = engined.CircuitBreaker("inventory", failure_threshold=3, recovery_timeout=0.2)
    breaker.add_listener(lambda event: print(f"  event: {event.from_state} -> {event.to_state}"))

    @breaker
    def fetch_stock(item: str) -> int:
        return inventory.call(item)

    print("1. the inventory service goes down; after 3 failures the breaker opens")
    inventory.down()
    for attempt in range(1, 6):
        try:
            fetch_stock("widget")
        except ConnectionError as err:
            print(f"  call {attempt}: failed ({err}), state={breaker.state}")
        except engined.CircuitBreakerOpenError as err:
            print(f"  call {attempt}: rejected without calling ({err})")
    print(f"  the service saw {inventory.calls} of the 5 calls")

    print("2. the service comes back while the breaker is open")
    inventory.up()
    time.sleep(0.25)  # longer than recovery_timeout
    print(f"  after the recovery timeout: state={breaker.state}")

    print("3. the first call is the probe; its success closes the breaker")
    print(f"  probe returned {fetch_stock('widget')}, state={breaker.state}")

    m = breaker.metrics
    print(
        f"final: state={m.state} calls={m.total_calls} failed={m.failed_calls} "
        f"rejected={m.rejected_calls} times_opened={m.times_opened}; "
        f"the service saw {inventory.calls} calls"
    )


if __name__ == "__main__":
    main()
