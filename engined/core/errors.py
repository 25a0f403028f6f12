"""The errors engined raises on its own account, as one small tree (DESIGN.md §3).

::

    EnginedError                      base: catch it to catch anything engined decided
    ├── RejectedError                 the call was refused without running
    │   ├── CircuitBreakerOpenError   engined.core.circuit_breaker: the breaker refuses
    │   └── BulkheadFullError         engined.core.bulkhead: every slot is taken
    └── CallTimeoutError              engined.core.timeout: also a TimeoutError

``except engined.RejectedError:`` catches every refusal (as Polly's
ExecutionRejectedException does): the dependency was never called, so the request may be
answered at once (a gateway's 503 or 429) or sent elsewhere. Errors raised by the
protected function itself propagate unchanged and are never wrapped in these.
"""

from __future__ import annotations

__all__ = ["EnginedError", "RejectedError"]


class EnginedError(Exception):
    """Base of every error engined raises on its own account."""

    __slots__ = ()


class RejectedError(EnginedError):
    """The call was refused without running: an open breaker or a full bulkhead."""

    __slots__ = ()
