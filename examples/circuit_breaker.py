"""Trip a circuit breaker on a failing dependency, watch it reject, probe and recover.

Run: python examples/circuit_breaker.py   (about 0.5 s, no network)
"""

import time

import engined


def main() -> None:
    """Fail a fake dependency until the breaker opens, then let it recover."""
    breaker = engined.CircuitBreaker("inventory", failure_threshold=3, recovery_timeout=0.2)
    breaker.add_listener(lambda event: print(f"  event: {event.from_state} -> {event.to_state}"))
    healthy = False

    @breaker
    def fetch_stock(item: str) -> int:
        if not healthy:
            msg = f"inventory service down while fetching {item}"
            raise ConnectionError(msg)
        return 42

    print("1. the dependency fails; after 3 failures the breaker opens")
    for attempt in range(1, 5):
        try:
            fetch_stock("widget")
        except ConnectionError:
            print(f"  call {attempt}: failed, state={breaker.state}")
        except engined.CircuitBreakerOpenError as err:
            print(f"  call {attempt}: rejected without calling ({err})")

    print("2. the dependency recovers while the breaker is open")
    healthy = True
    time.sleep(0.25)  # longer than recovery_timeout
    print(f"  after the recovery timeout: state={breaker.state}")

    print("3. the first call is the probe; its success closes the breaker")
    print(f"  probe returned {fetch_stock('widget')}, state={breaker.state}")

    m = breaker.metrics
    print(
        f"final: state={m.state} calls={m.total_calls} failed={m.failed_calls} "
        f"rejected={m.rejected_calls} times_opened={m.times_opened}"
    )


if __name__ == "__main__":
    main()
