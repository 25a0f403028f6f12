"""One call's attempts on a FakeClock: deadline arithmetic, backoff, pushback, budget, breakers."""

from __future__ import annotations

import random

import grpc
import pytest

from engined import Backoff, CircuitState, RetryBudget, default_registry
from engined.rpc import RpcPolicy
from engined.rpc._attempts import MIN_ATTEMPT_TIMEOUT, ClientCore
from engined.rpc._status import STOP, effective_timeout, pushback_delay
from engined.testing import FakeClock

C = grpc.StatusCode
UNAVAILABLE = C.UNAVAILABLE


def _core(clock: FakeClock, target: str = "svc:1", **policy: object) -> ClientCore:
    policy.setdefault(
        "retry",
        {"max_attempts": 5, "initial_backoff": 0.1, "max_backoff": 1.0, "backoff_multiplier": 2},
    )
    core = ClientCore(RpcPolicy(**policy), target, clock)  # type: ignore[arg-type]
    core.rng = random.Random(7)
    return core


def _pushback(value: str) -> tuple[tuple[str, str], ...]:
    return (("grpc-retry-pushback-ms", value),)


def test_backoff_is_full_jitter_under_the_a6_caps(clock: FakeClock) -> None:
    """Delays are drawn from [0, min(initial * multiplier**(n-1), max)] for retry n."""
    core = _core(clock)
    attempts = core.start(None)
    caps = [0.1, 0.2, 0.4, 0.8]
    for cap in caps:
        delay = attempts.retry_delay(UNAVAILABLE, ())
        assert delay is not None
        assert 0 <= delay <= cap
        assert attempts.next_attempt()
    assert attempts.number == 5
    assert attempts.retry_delay(UNAVAILABLE, ()) is None  # five attempts: no sixth


def test_only_retryable_codes_are_retried(clock: FakeClock) -> None:
    """INTERNAL is a breaker failure by default but not retryable (UNAVAILABLE only)."""
    attempts = _core(clock).start(None)
    assert attempts.retry_delay(C.INTERNAL, ()) is None
    assert attempts.retry_delay(C.OK, ()) is None
    assert attempts.retry_delay(UNAVAILABLE, ()) is not None


def test_each_attempt_gets_only_the_time_left(clock: FakeClock) -> None:
    """One deadline across attempts: attempt time and backoff sleeps both use it up."""
    core = _core(clock)
    attempts = core.start(2.0)
    assert (attempts.timeout, attempts.deadline) == (2.0, 2.0)
    clock.advance(0.5)  # the first attempt ran 0.5 s
    delay = attempts.retry_delay(UNAVAILABLE, _pushback("300"))
    assert delay == 0.3
    clock.sleep(delay)
    assert attempts.next_attempt()
    assert attempts.timeout == pytest.approx(1.2)  # 2.0 - 0.5 - 0.3
    assert attempts.number == 2


def test_no_retry_when_the_backoff_would_pass_the_deadline(clock: FakeClock) -> None:
    """A retry whose sleep would leave less than the minimum attempt time is not started."""
    attempts = _core(clock).start(1.0)
    clock.advance(0.7)
    assert attempts.retry_delay(UNAVAILABLE, _pushback("300")) is None  # 1 ms short
    assert attempts.retry_delay(UNAVAILABLE, _pushback("298")) == pytest.approx(0.298)


def test_no_retry_once_the_deadline_has_passed(clock: FakeClock) -> None:
    """An exhausted deadline stops retrying, even with zero backoff asked for."""
    attempts = _core(clock).start(1.0)
    clock.advance(1.0)
    assert attempts.retry_delay(UNAVAILABLE, _pushback("0")) is None


def test_next_attempt_fails_when_the_sleep_overran_the_deadline(clock: FakeClock) -> None:
    """A sleep that took longer than asked (a busy loop) leaves no room: no next attempt."""
    attempts = _core(clock).start(1.0)
    assert attempts.retry_delay(UNAVAILABLE, _pushback("500")) == 0.5
    clock.advance(1.0 - MIN_ATTEMPT_TIMEOUT / 2)
    assert not attempts.next_attempt()


def test_default_timeout_applies_when_the_caller_sets_none(clock: FakeClock) -> None:
    """default_timeout becomes the call's deadline only when the caller gave no timeout."""
    core = _core(clock, default_timeout=3.0)
    assert core.start(None).timeout == 3.0
    assert core.start(0.5).timeout == 0.5


def test_no_deadline_values_are_clamped(clock: FakeClock) -> None:
    """A time_remaining() of ~9.2e18 s means "no deadline" and is not passed on.

    Guards grpc/grpc#9423 (time_remaining() without a deadline is huge, not None) and
    grpc/grpc#26236 (passing it as timeout= fails at once with DEADLINE_EXCEEDED).
    """
    assert effective_timeout(9.223372036854776e18, None) is None
    assert effective_timeout(9.223372036854776e18, 4.0) == 4.0
    assert effective_timeout(1e6, None) == 1e6
    attempts = _core(clock).start(9.2e18)
    assert attempts.timeout is None
    assert attempts.deadline is None


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ((), None),
        (None, None),
        ((("other", "5"),), None),
        (_pushback("0"), 0.0),
        (_pushback("250"), 0.25),
        (_pushback(str(2**31 - 1)), (2**31 - 1) / 1000),
        (_pushback("-1"), STOP),
        (_pushback("-0"), STOP),
        (_pushback(str(2**31)), STOP),
        (_pushback("1.5"), STOP),
        (_pushback(" 10"), STOP),
        (_pushback("+10"), STOP),
        (_pushback("1_0"), STOP),
        (_pushback("\u0661\u0660"), STOP),  # Arabic-Indic digits: not ASCII
        (_pushback(""), STOP),
        (_pushback("10") + _pushback("20"), STOP),
        ((("grpc-retry-pushback-ms", b"40"),), 0.04),
    ],
)
def test_pushback_is_parsed_strictly(
    metadata: tuple[tuple[str, str | bytes], ...] | None, expected: float | None
) -> None:
    """A non-negative int32 of ms is a delay; negative, malformed or repeated means stop."""
    assert pushback_delay(metadata) == expected


def test_pushback_is_waited_exactly_and_resets_the_backoff(clock: FakeClock) -> None:
    """A valid pushback is the exact delay; the next backoff starts again at initial_backoff."""
    core = _core(clock, retry={"max_attempts": 5, "initial_backoff": 1, "max_backoff": 10})
    core.backoff = Backoff(initial=1, multiplier=2, max=10, jitter="none")  # exact caps
    attempts = core.start(None)
    delays = []
    for trailing in ((), (), _pushback("7000"), ()):
        delays.append(attempts.retry_delay(UNAVAILABLE, trailing))
        assert attempts.next_attempt()
    assert delays == [1, 2, 7.0, 1]  # 7 s beyond max_backoff; then 1 again, not 4


@pytest.mark.parametrize("value", ["-1", "soon", "12ms"])
def test_negative_or_malformed_pushback_stops_retrying(clock: FakeClock, value: str) -> None:
    """The server asked for no retry: none is made, whatever attempts are left."""
    attempts = _core(clock).start(None)
    assert attempts.retry_delay(UNAVAILABLE, _pushback(value)) is None


def test_budget_below_half_stops_retries(clock: FakeClock) -> None:
    """Retryable failures cost a token each; at half the tokens, retries stop (gRFC A6)."""
    budget = RetryBudget(max_tokens=4, token_ratio=1)
    core = _core(clock, budget=budget)
    breaker = core.breaker("/s.S/M")
    core.settle(breaker.acquire(), UNAVAILABLE)
    assert budget.tokens == 3
    assert core.start(None).retry_delay(UNAVAILABLE, ()) is not None
    core.settle(breaker.acquire(), UNAVAILABLE)
    assert core.start(None).retry_delay(UNAVAILABLE, ()) is None  # 2 of 4 left
    core.settle(breaker.acquire(), C.INVALID_ARGUMENT)  # not retryable: costs nothing
    assert budget.tokens == 2
    core.settle(breaker.acquire(), C.OK)
    assert budget.tokens == 3
    assert core.start(None).retry_delay(UNAVAILABLE, ()) is not None


def test_classification_defaults(clock: FakeClock) -> None:
    """Failure codes count as failures, CANCELLED is not counted, the rest are successes."""
    core = _core(clock, breaker={"failure_threshold": 100})
    breaker = core.breaker("/s.S/M")
    for code in [*C]:
        core.settle(breaker.acquire(), code)
    core.settle(breaker.acquire(), None)  # broke on the client side: not counted
    m = breaker.metrics
    assert m.failed_calls == 6
    assert m.ignored_calls == 0  # CANCELLED gives the permit back: not a call at all
    assert m.successful_calls == len(C) - 6 - 1
    assert m.total_calls == len(C) - 1


def test_custom_classification(clock: FakeClock) -> None:
    """A policy may move codes between failure, ignored and success."""
    core = _core(clock, failure_codes=["NOT_FOUND"], ignored_codes=["UNAVAILABLE"])
    breaker = core.breaker("/s.S/M")
    for code in (C.NOT_FOUND, C.UNAVAILABLE, C.INTERNAL, C.CANCELLED):
        core.settle(breaker.acquire(), code)
    m = breaker.metrics
    assert (m.failed_calls, m.successful_calls, m.total_calls) == (1, 2, 3)


def test_target_scope_registers_one_breaker(clock: FakeClock) -> None:
    """Target scope: one breaker rpc:<target>, in the default registry at construction."""
    core = _core(clock, target="db.internal:5000")
    assert default_registry().get("rpc:db.internal:5000") is core.breaker("/a.A/X")
    assert core.breaker("/b.B/Y") is core.breaker(b"/a.A/X")
    assert len(default_registry()) == 1


def test_method_scope_gives_each_method_its_own_breaker(clock: FakeClock) -> None:
    """Method scope: rpc:<target>/<service>/<method>, created on first use and cached."""
    core = _core(clock, target="api:443", breaker_scope="method")
    assert len(default_registry()) == 0
    first = core.breaker(b"/pkg.Svc/Get")
    assert first.name == "rpc:api:443/pkg.Svc/Get"
    assert core.breaker("/pkg.Svc/Put").name == "rpc:api:443/pkg.Svc/Put"
    assert core.breaker(b"/pkg.Svc/Get") is first
    assert default_registry().get("rpc:api:443/pkg.Svc/Get") is first
    assert len(default_registry()) == 2


def test_breaker_settings_and_clock_reach_the_registered_breaker(clock: FakeClock) -> None:
    """The policy's breaker settings and the interceptor's clock configure the breaker."""
    core = _core(clock, breaker={"failure_threshold": 2, "recovery_timeout": 5.0})
    breaker = core.breaker("/s.S/M")
    for _ in range(2):
        core.settle(breaker.acquire(), UNAVAILABLE)
    assert breaker.state is CircuitState.OPEN
    clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN


def test_a_conflicting_breaker_in_the_registry_is_refused(clock: FakeClock) -> None:
    """Two interceptors for one target with different breaker settings cannot share it."""
    _core(clock, target="t", breaker={"failure_threshold": 2})
    with pytest.raises(ValueError, match="failure_threshold"):
        _core(clock, target="t", breaker={"failure_threshold": 3})
    assert _core(clock, target="t", breaker={"failure_threshold": 2}) is not None


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (({}, "t"), TypeError, "policy must be an engined.rpc.RpcPolicy"),
        ((RpcPolicy(), ""), ValueError, "target must not be empty"),
        ((RpcPolicy(), 5), TypeError, "target must be a str"),
    ],
)
def test_bad_arguments_name_themselves(
    clock: FakeClock, args: tuple[object, object], error: type[Exception], message: str
) -> None:
    """A wrong policy, target or clock is refused naming the argument."""
    with pytest.raises(error, match=message):
        ClientCore(args[0], args[1], clock)  # type: ignore[arg-type]


def test_a_clock_class_is_refused() -> None:
    """clock=FakeClock (the class) is refused naming clock."""
    with pytest.raises(TypeError, match=r"clock must be an engined\.Clock instance"):
        ClientCore(RpcPolicy(), "t", FakeClock)  # type: ignore[arg-type]
