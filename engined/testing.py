"""Helpers for testing code that uses engined, without sleeping.

:class:`FakeClock` is virtual time: pass it as ``clock=`` and move time with
:meth:`FakeClock.advance`. Sleeps return at once, advance the clock by what they
asked for and record it in :attr:`FakeClock.sleeps`, so a test can assert on the
exact schedule a retry or a health loop followed.

:class:`FakeDependency` is fault injection: a stand-in for a database or an RPC peer
that fails by script, at a seeded rate or while switched down, takes its latency on
the injected clock and counts its calls, so a test (or an example) can show what a
breaker, a retry or a health check does when the dependency misbehaves, exactly and
repeatably, without a network.

This module imports ``engined._clock`` and ``engined.core._validate`` only, never the
``engined`` package's names, since ``engined/__init__.py`` imports it.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
from collections.abc import Iterable
from typing import Any, Generic, TypeAlias, TypeVar, cast, overload

from engined._clock import SYSTEM_CLOCK, Clock
from engined.core._validate import check_clock, check_name, check_positive

__all__ = ["FakeClock", "FakeDependency"]

T = TypeVar("T")

ErrorSpec: TypeAlias = type[BaseException] | BaseException
"""An exception class (raised as a fresh instance each time) or an instance."""


class FakeClock:
    """A :class:`engined.Clock` whose time moves only when told to.

    Thread-safe: several threads may sleep or advance it at once.

    Args:
        start: The initial reading of :meth:`monotonic`.

    Attributes:
        sleeps: Every sleep requested through :meth:`sleep` or :meth:`sleep_async`, in order.
    """

    __slots__ = ("_lock", "_now", "sleeps")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        """Return the current virtual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds``.

        Raises:
            ValueError: If ``seconds`` is negative; a monotonic clock never goes back.
        """
        if seconds < 0:
            msg = f"seconds must be >= 0, got {seconds!r}"
            raise ValueError(msg)
        with self._lock:
            self._now += seconds

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance time by it, returning at once."""
        with self._lock:
            self.sleeps.append(seconds)
            self._now += max(seconds, 0.0)

    async def sleep_async(self, seconds: float) -> None:
        """Record the sleep, advance time by it, and yield to the event loop once."""
        self.sleep(seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock(now={self._now!r}, sleeps={len(self.sleeps)})"


class FakeDependency(Generic[T]):
    """A stand-in for a database, RPC peer or broker that fails when a test says so.

    Put it where the real dependency would be, behind a breaker, a retry or a health
    check, and script what it does: a list of outcomes consumed one per call, a seeded
    failure rate, latency on the injected clock, or an outage switched with
    :meth:`down` and :meth:`up`. It counts what happened, exactly, across threads and
    tasks, so a test can assert on how often the code under test really called it.

    Each call is decided in this order:

    1. while :meth:`down`, it raises the outage's error;
    2. otherwise the next scripted outcome, if any is left, is consumed: an exception
       class is raised as a fresh instance, an exception instance is raised as it is,
       anything else is returned;
    3. otherwise it fails with ``error`` with probability ``failure_rate``;
    4. otherwise it returns ``result``.

    The outcome is decided when the call starts, in call order, so a script and a seeded
    failure rate are deterministic even when calls overlap; then the call waits
    ``latency`` seconds on the clock (``clock.sleep`` or ``await clock.sleep_async``;
    nothing at all when it is 0) and delivers it. Under a
    :class:`FakeClock` nothing really sleeps and ``clock.sleeps`` shows every wait.

    Call it as ``dep(...)`` or ``dep.call(...)`` (sync), or ``await
    dep.call_async(...)``, an ``async def`` that ``@breaker`` and ``@retry`` see as
    async. Arguments are ignored, apart from being recorded in :attr:`last_args` and
    :attr:`last_kwargs`.

    Args:
        name: Shown in its ``repr`` and in the messages of the errors it raises.
        result: What a successful call returns.
        script: Outcomes for the first calls, one each: an exception class or instance
            to raise, or a value to return (of ``result``'s type: it is typed as one).
            When they run out the steady behaviour (``failure_rate``, ``result``) takes
            over. Read once, at construction; :meth:`enqueue` adds more.
        failure_rate: Probability in [0, 1] that a call past the script fails. 0 never
            fails and 1 always does, without drawing random numbers.
        seed: Seed of the random draws, so that a run can be repeated. Draws are
            deterministic by default (seed 0); pass ``seed`` or ``rng``, not both.
        rng: A ``random.Random`` to draw from instead of a seeded one of its own.
        latency: Seconds every call waits on ``clock`` before it returns or raises.
        error: What a failure raises: an exception class (a fresh instance each time,
            built with a message) or an instance (raised as it is, every time).
        clock: Where the latency is spent; a :class:`FakeClock` in tests.

    Attributes:
        name: The name given.
        result: What a successful call past the script returns; may be reassigned.
        last_args: Positional arguments of the latest call (``()`` before any).
        last_kwargs: Keyword arguments of the latest call.

    Raises:
        TypeError: If an argument has the wrong type; the message names it.
        ValueError: If a number is out of range, or both ``seed`` and ``rng`` are given.

    ``calls`` counts a call when it starts; ``successes`` and ``failures`` count it when
    it returns or raises, after its latency. So ``calls == successes + failures`` once
    no call is in flight, unless a task was cancelled while waiting out its latency
    (counted in ``calls`` only: it neither returned nor failed).

    Example:
        >>> dep = FakeDependency("db", result="row", script=[ConnectionError])
        >>> dep()
        Traceback (most recent call last):
        ...
        ConnectionError: db: scripted failure (call 1)
        >>> dep()
        'row'
        >>> dep.calls, dep.successes, dep.failures
        (2, 1, 1)
    """

    __slots__ = (
        "_calls",
        "_clock",
        "_down",
        "_error",
        "_failure_rate",
        "_failures",
        "_latency",
        "_lock",
        "_rng",
        "_script",
        "_successes",
        "last_args",
        "last_kwargs",
        "name",
        "result",
    )

    @overload
    def __init__(
        self: FakeDependency[None],
        name: str = "dependency",
        *,
        result: None = None,
        script: Iterable[object] = (),
        failure_rate: float = 0.0,
        seed: int | None = None,
        rng: random.Random | None = None,
        latency: float = 0.0,
        error: ErrorSpec = ConnectionError,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None: ...

    @overload
    def __init__(
        self,
        name: str = "dependency",
        *,
        result: T,
        script: Iterable[object] = (),
        failure_rate: float = 0.0,
        seed: int | None = None,
        rng: random.Random | None = None,
        latency: float = 0.0,
        error: ErrorSpec = ConnectionError,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None: ...

    def __init__(
        self,
        name: str = "dependency",
        *,
        result: Any = None,
        script: Iterable[Any] = (),
        failure_rate: float = 0.0,
        seed: int | None = None,
        rng: random.Random | None = None,
        latency: float = 0.0,
        error: ErrorSpec = ConnectionError,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.name = check_name("name", name)
        self.result: T = result
        self._script: collections.deque[Any] = _check_script(script)
        self._failure_rate = _check_probability("failure_rate", failure_rate)
        self._rng = _check_randomness(seed, rng)
        self._latency = check_positive("latency", latency, inclusive=True)
        self._error = _check_error("error", error)
        self._clock: Clock = check_clock("clock", clock)
        self._down: ErrorSpec | None = None
        self._lock = threading.Lock()
        self._calls = self._successes = self._failures = 0
        self.last_args: tuple[Any, ...] = ()
        self.last_kwargs: dict[str, Any] = {}

    @property
    def calls(self) -> int:
        """Calls made so far, including any still waiting out their latency."""
        return self._calls

    @property
    def successes(self) -> int:
        """Calls that returned a value."""
        return self._successes

    @property
    def failures(self) -> int:
        """Calls that raised (scripted, drawn, or while down)."""
        return self._failures

    @property
    def is_down(self) -> bool:
        """Whether :meth:`down` is in force."""
        return self._down is not None

    @property
    def script_left(self) -> int:
        """Scripted outcomes not consumed yet."""
        with self._lock:
            return len(self._script)

    @property
    def latency(self) -> float:
        """Seconds each call waits on the clock; settable, e.g. to make it slow mid-test."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._latency = check_positive("latency", seconds, inclusive=True)

    def down(self, error: ErrorSpec | None = None) -> None:
        """Start an outage: every call raises until :meth:`up`.

        The script is not consumed and no random number is drawn meanwhile, so after
        :meth:`up` the dependency carries on where it left off.

        Args:
            error: What each call raises: an exception class (a fresh instance per
                call) or an instance. Defaults to the ``error`` given at construction.
        """
        spec = self._error if error is None else _check_error("error", error)
        with self._lock:
            self._down = spec

    def up(self) -> None:
        """End an outage started by :meth:`down`; a no-op if there is none."""
        with self._lock:
            self._down = None

    def enqueue(self, *outcomes: object) -> None:
        """Append ``outcomes`` to the script, to be consumed after what is left of it."""
        with self._lock:
            self._script.extend(outcomes)

    def reset_counts(self) -> None:
        """Set ``calls``, ``successes`` and ``failures`` to 0 and forget the last arguments.

        The script, the outage and the random draws are left as they are.
        """
        with self._lock:
            self._calls = self._successes = self._failures = 0
            self.last_args, self.last_kwargs = (), {}

    def call(self, *args: Any, **kwargs: Any) -> T:
        """Call the dependency: wait its latency on the clock, then return or raise.

        Raises:
            BaseException: The failure decided for this call.
        """
        failed, outcome = self._decide(args, kwargs)
        if self._latency > 0:
            self._clock.sleep(self._latency)
        return self._deliver(failed, outcome)

    __call__ = call

    async def call_async(self, *args: Any, **kwargs: Any) -> T:
        """Call the dependency from a task: await its latency on the clock, then return or raise.

        Raises:
            BaseException: The failure decided for this call.
        """
        failed, outcome = self._decide(args, kwargs)
        if self._latency > 0:
            await self._clock.sleep_async(self._latency)
        return self._deliver(failed, outcome)

    def _decide(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bool, Any]:
        """Count the call and choose its outcome: ``(True, exception)`` or ``(False, value)``."""
        with self._lock:
            self._calls += 1
            number = self._calls
            self.last_args, self.last_kwargs = args, kwargs
            if self._down is not None:
                return True, _instance(self._down, f"{self.name} is down (call {number})")
            if self._script:
                step = self._script.popleft()
                if _is_error(step):
                    return True, _instance(step, f"{self.name}: scripted failure (call {number})")
                return False, step
            rate = self._failure_rate
            if rate and (rate >= 1.0 or self._rng.random() < rate):
                return True, _instance(
                    self._error, f"{self.name}: injected failure (call {number})"
                )
            return False, self.result

    def _deliver(self, failed: bool, outcome: Any) -> T:
        with self._lock:
            if failed:
                self._failures += 1
            else:
                self._successes += 1
        if failed:
            raise outcome
        return cast(T, outcome)

    def __repr__(self) -> str:
        state = "down" if self._down is not None else "up"
        return (
            f"FakeDependency({self.name!r}, {state}, calls={self._calls}, "
            f"successes={self._successes}, failures={self._failures}, "
            f"script_left={len(self._script)})"
        )


def _is_error(value: object) -> bool:
    return isinstance(value, BaseException) or (
        isinstance(value, type) and issubclass(value, BaseException)
    )


def _instance(spec: ErrorSpec, message: str) -> BaseException:
    return spec(message) if isinstance(spec, type) else spec


def _check_error(param: str, value: object) -> ErrorSpec:
    if not _is_error(value):
        msg = f"{param} must be an exception class or instance, got {value!r}"
        raise TypeError(msg)
    return cast(ErrorSpec, value)


def _check_probability(param: str, value: object) -> float:
    number = check_positive(param, value, inclusive=True)
    if number > 1.0:
        hint = f" (a ratio, not a percentage: use {number / 100:g})" if number <= 100 else ""
        msg = f"{param} must be in [0, 1], got {value!r}{hint}"
        raise ValueError(msg)
    return number


def _check_randomness(seed: object, rng: object) -> random.Random:
    if rng is not None:
        if seed is not None:
            msg = "pass seed or rng, not both"
            raise ValueError(msg)
        if not isinstance(rng, random.Random):
            msg = f"rng must be a random.Random, got {type(rng).__name__}"
            raise TypeError(msg)
        return rng
    if seed is None:
        return random.Random(0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        msg = f"seed must be an int, got {type(seed).__name__}"
        raise TypeError(msg)
    return random.Random(seed)


def _check_script(script: object) -> collections.deque[Any]:
    if isinstance(script, str | bytes) or not isinstance(script, Iterable):
        msg = f"script must be an iterable of outcomes, got {type(script).__name__}"
        raise TypeError(msg)
    return collections.deque(script)
