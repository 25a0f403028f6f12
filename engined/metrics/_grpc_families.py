"""The go-grpc-prometheus families, their label values, and per-method pre-bound children.

Names, labels and label values copy grpc-ecosystem/go-grpc-prometheus so that its
dashboards and alert rules work unchanged: ``grpc_type`` is ``unary``, ``client_stream``,
``server_stream`` or ``bidi_stream``; ``grpc_service`` the full ``package.Service``;
``grpc_method`` the method's name; ``grpc_code`` Go's name of the status (``OK``,
``NotFound``, ``Unavailable``, ``Canceled``...). A method path that does not parse is
``unknown``/``unknown``, so nothing a peer sends can grow the label set beyond the methods
the code calls or serves.

Each method's children are bound once, at its first call (``labels()`` costs about 4x a
bound child's ``inc()``), and cached by the raw method path; handled counts bind one child
per status code the method has ended with.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any, Final, Literal

import grpc
from prometheus_client import Counter, Histogram
from prometheus_client.metrics_core import Metric

from engined._clock import Clock

__all__ = [
    "BUCKETS",
    "DEADLINE_SLACK",
    "GrpcFamilies",
    "GrpcType",
    "MethodMetrics",
    "Outcome",
    "cancelled_code",
    "code_label",
    "split_method",
    "status_code",
]

GrpcType = Literal["unary", "client_stream", "server_stream", "bidi_stream"]

BUCKETS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Handling-time buckets in seconds: a loopback call takes ~0.5 ms, under Go's first bucket."""

DEADLINE_SLACK: Final = 0.05
"""Seconds before its deadline within which a cancelled server call counts as timed out."""

_GO_NAMES: Final = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}
_BY_NUMBER: Final = {code.value[0]: code for code in grpc.StatusCode}


def code_label(code: grpc.StatusCode) -> str:
    """The ``grpc_code`` label value of ``code``: Go's name for it, as go-grpc-prometheus has it."""
    return _GO_NAMES[code]


def status_code(value: object) -> grpc.StatusCode | None:
    """``value`` as a ``grpc.StatusCode``: a member, its number, or ``None`` (nothing set)."""
    if isinstance(value, grpc.StatusCode):
        return value
    if isinstance(value, int):
        return _BY_NUMBER.get(value, grpc.StatusCode.UNKNOWN)
    return None


def cancelled_code(context: Any) -> grpc.StatusCode:
    """Why a call was cut short on the server: its deadline passed, or it was cancelled.

    grpc cancels the handler either way; a deadline that has run out tells them apart.
    The caller's copy of the deadline runs out first (the server's started when the
    request arrived) and its cancellation can arrive just before the server's own timer
    fires, so a call cut short within :data:`DEADLINE_SLACK` of its deadline counts as
    DEADLINE_EXCEEDED.
    """
    try:
        remaining = context.time_remaining()
    except Exception:  # a context that cannot tell: it is a cancellation all the same
        return grpc.StatusCode.CANCELLED
    if remaining is not None and remaining <= DEADLINE_SLACK:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def split_method(method: str | bytes) -> tuple[str, str]:
    """``("package.Service", "Method")`` from ``"/package.Service/Method"``, else unknown."""
    text = method.decode("utf-8", "replace") if isinstance(method, bytes) else method
    _, slash, rest = text.partition("/")
    service, slash2, name = rest.partition("/")
    if slash != "/" or slash2 != "/" or not service or not name or "/" in name or text[0] != "/":
        return "unknown", "unknown"
    return service, name


class MethodMetrics:
    """The bound children of one (method, type): what a call touches, nothing looked up."""

    __slots__ = ("_handled", "_handled_family", "_labels", "received", "seconds", "sent", "started")

    def __init__(self, families: GrpcFamilies, labels: tuple[str, str, str]) -> None:
        self._labels = labels
        self._handled_family = families.handled
        self.started = families.started.labels(*labels).inc
        self.received = families.received.labels(*labels).inc
        self.sent = families.sent.labels(*labels).inc
        self.seconds = families.seconds.labels(*labels).observe
        self._handled: dict[grpc.StatusCode, Callable[[], None]] = {}
        self.handled(grpc.StatusCode.OK, count=False)  # the OK series exists from the first call

    def handled(self, code: grpc.StatusCode, *, count: bool = True) -> None:
        """Count one call that ended with ``code`` (with ``count=False``: only bind its child)."""
        inc = self._handled.get(code)
        if inc is None:
            inc = self._handled[code] = self._handled_family.labels(
                *self._labels, code_label(code)
            ).inc
        if count:
            inc()


class GrpcFamilies:
    """The five families of one side (``grpc_server`` or ``grpc_client``), and a collector of them.

    The metrics are created unregistered; the object itself is the collector that a
    ``CollectorRegistry`` registers, so one set of families can be exposed by any
    registry without touching prometheus_client's global one.
    """

    def __init__(self, prefix: Literal["grpc_server", "grpc_client"], clock: Clock) -> None:
        side = "server" if prefix == "grpc_server" else "client"
        labels = ("grpc_type", "grpc_service", "grpc_method")
        self.clock = clock
        self.started = Counter(
            f"{prefix}_started_total",
            f"Total number of RPCs started on the {side}.",
            labels,
            registry=None,
        )
        self.handled = Counter(
            f"{prefix}_handled_total",
            f"Total number of RPCs completed on the {side}, regardless of success or failure.",
            (*labels, "grpc_code"),
            registry=None,
        )
        self.seconds = Histogram(
            f"{prefix}_handling_seconds",
            f"Histogram of response latency (seconds) of gRPC that had been application-level "
            f"handled by the {side}.",
            labels,
            buckets=BUCKETS,
            registry=None,
        )
        self.received = Counter(
            f"{prefix}_msg_received_total",
            f"Total number of RPC stream messages received by the {side}.",
            labels,
            registry=None,
        )
        self.sent = Counter(
            f"{prefix}_msg_sent_total",
            f"Total number of gRPC stream messages sent by the {side}.",
            labels,
            registry=None,
        )
        self._methods: dict[tuple[str | bytes, GrpcType], MethodMetrics] = {}

    def method(self, path: str | bytes, grpc_type: GrpcType) -> MethodMetrics:
        """The children of ``path`` called as ``grpc_type``, bound at its first call."""
        found = self._methods.get((path, grpc_type))
        if found is None:
            # Two threads may bind the same method at once: labels() hands both the same
            # children, so whichever entry is kept counts into the same series.
            found = self._methods[path, grpc_type] = MethodMetrics(
                self, (grpc_type, *split_method(path))
            )
        return found

    def _metrics(self) -> tuple[Counter | Histogram, ...]:
        return (self.started, self.handled, self.seconds, self.received, self.sent)

    def collect(self) -> Iterable[Metric]:
        """Yield the five families (prometheus_client's Collector protocol)."""
        return itertools.chain.from_iterable(metric.collect() for metric in self._metrics())

    def describe(self) -> Iterable[Metric]:
        """Yield the five families' names, for a registry's duplicate check."""
        return itertools.chain.from_iterable(metric.describe() for metric in self._metrics())


class Outcome:
    """One call's end, recorded once by whichever path sees it first (any thread).

    ``_first`` is ``itertools.count().__next__``: a single C call, atomic under the GIL,
    that returns 0 only once, so two threads racing to finish a call count it once.

    A response stream has three witnesses of its end. Its reader is authoritative: it
    sees the status the caller gets, after any retry ``engined.rpc`` made before the first
    message. The call's done-callback is final for OK, CANCELLED, a call whose reader is
    waiting on it, or one that already delivered a message (no retry can follow); any
    other status is kept *pending*, since a reader may yet come and retry. The stream
    object being collected settles a pending status, so a stream nobody reads is counted
    with the status it ended with.

    Args:
        method: The method's children; its ``started`` is counted here.
        clock: Times the call, from now to :meth:`finish`.
        on_ok: Called once if the call ends OK: the unary message of an arity whose
            one message is only known to have passed once the call succeeded.
        stream: The response is a stream (its status may be deferred, see above).
    """

    __slots__ = (
        "_first",
        "_method",
        "_monotonic",
        "_on_ok",
        "_start",
        "_stream",
        "delivered",
        "pending",
        "reading",
    )

    def __init__(
        self,
        method: MethodMetrics,
        clock: Clock,
        *,
        on_ok: Callable[[], None] | None = None,
        stream: bool = False,
    ) -> None:
        self._method = method
        self._monotonic = clock.monotonic
        self._start = clock.monotonic()
        self._first = itertools.count().__next__
        self._on_ok = on_ok
        self._stream = stream
        self.reading = False  # a reader waits on the stream now: it will see the end
        self.delivered = False  # a message was read: the call can no longer be retried
        self.pending: grpc.StatusCode | None = None
        method.started()

    def finish(self, code: grpc.StatusCode) -> None:
        """Count the call as handled with ``code``, and its time; later calls do nothing."""
        if self._first():
            return
        method = self._method
        method.seconds(self._monotonic() - self._start)
        method.handled(code)
        if self._on_ok is not None and code is grpc.StatusCode.OK:
            self._on_ok()

    def call_done(self, code: grpc.StatusCode) -> None:
        """The call ended with ``code`` (its done-callback): finish, or keep it pending."""
        if self.reading:
            return  # the reader sees this end, or the retry that follows it
        if (
            not self._stream
            or self.delivered
            or code is grpc.StatusCode.OK
            or code is grpc.StatusCode.CANCELLED
        ):
            self.finish(code)
        else:
            self.pending = code

    def dropped(self) -> None:
        """The response stream was collected: a pending status is final now."""
        pending = self.pending
        if pending is not None:
            self.finish(pending)
