"""Client request streams that count what they send, keeping what they could do before.

A list or tuple stays a sequence (``engined.rpc`` resends a sequence on a retry, never an
iterator), counting each message every time it is iterated, as each pass sends them
again; an async iterable stays async (grpc.aio's ``write()`` calls arrive as one); any
other iterable becomes a generator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, overload

__all__ = ["counted_requests"]

Tick = Callable[[], None]


class _CountedSequence(Sequence[Any]):
    """A sequence whose iteration counts each message it hands out.

    It is also an iterator over one pass (``__next__``): sync grpc calls ``next()`` on the
    request stream it is given, where ``engined.rpc`` calls ``iter()`` once per attempt.
    """

    __slots__ = ("_items", "_pass", "_tick")

    def __init__(self, items: Sequence[Any], tick: Tick) -> None:
        self._items = items
        self._tick = tick
        self._pass: Iterator[Any] | None = None

    def __next__(self) -> Any:
        if self._pass is None:
            self._pass = iter(self)
        return next(self._pass)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Any]:
        tick = self._tick
        for item in self._items:
            tick()
            yield item


async def _count_async(requests: Any, tick: Tick) -> AsyncIterator[Any]:
    async for request in requests:
        tick()
        yield request


def _count_sync(requests: Any, tick: Tick) -> Iterator[Any]:
    for request in requests:
        tick()
        yield request


def counted_requests(requests: Any, tick: Tick) -> Any:
    """``requests``, counting each message sent with ``tick``, of the same kind."""
    if isinstance(requests, Sequence) and not isinstance(requests, str | bytes | bytearray):
        return _CountedSequence(requests, tick)
    if hasattr(requests, "__aiter__"):
        return _count_async(requests, tick)
    return _count_sync(requests, tick)
