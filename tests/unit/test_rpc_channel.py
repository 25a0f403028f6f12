"""open_channel and open_aio_channel: credentials pick secure or insecure, grpc retries go off."""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
import pytest

from engined import default_registry
from engined.rpc import RpcPolicy, intercept_channel, open_aio_channel, open_channel


class Recorder:
    """Stands in for a grpc channel constructor and records how it was called."""

    def __init__(self, real: Any) -> None:
        self.real, self.calls = real, []  # type: ignore[var-annotated]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append((args, kwargs))
        return self.real("127.0.0.1:1", options=kwargs.get("options"))


@pytest.mark.parametrize("secure", [False, True])
def test_open_channel_turns_grpc_retries_off(monkeypatch: pytest.MonkeyPatch, secure: bool) -> None:
    """grpc.enable_retries=0 replaces any value given; credentials choose a secure channel."""
    recorder = Recorder(grpc.insecure_channel)
    monkeypatch.setattr(grpc, "secure_channel" if secure else "insecure_channel", recorder)
    credentials = grpc.ssl_channel_credentials() if secure else None
    options = [("grpc.enable_retries", 1), ("grpc.max_receive_message_length", 1024)]
    channel = open_channel("svc:443", credentials=credentials, options=options)
    channel.close()
    ((args, kwargs),) = recorder.calls
    assert args[0] == "svc:443"
    assert (args[1] is credentials) if secure else len(args) == 1
    assert kwargs["options"] == [
        ("grpc.max_receive_message_length", 1024),
        ("grpc.enable_retries", 0),
    ]
    assert default_registry().get("rpc:svc:443") is not None


@pytest.mark.parametrize("secure", [False, True])
async def test_open_aio_channel_turns_grpc_retries_off(
    monkeypatch: pytest.MonkeyPatch, secure: bool
) -> None:
    """The grpc.aio channel gets four interceptors and grpc.enable_retries=0."""
    seen: dict[str, Any] = {}

    def fake(*args: Any, **kwargs: Any) -> str:
        seen.update(args=args, **kwargs)
        return "channel"

    monkeypatch.setattr(grpc.aio, "secure_channel" if secure else "insecure_channel", fake)
    credentials = grpc.ssl_channel_credentials() if secure else None
    assert open_aio_channel("svc:443", RpcPolicy(), credentials=credentials) == "channel"
    assert seen["args"] == (("svc:443", credentials) if secure else ("svc:443",))
    assert seen["options"] == [("grpc.enable_retries", 0)]
    assert len(seen["interceptors"]) == 4


def test_a_bad_target_leaves_no_channel_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the interceptor cannot be built, the channel just opened is closed again."""
    closed: list[bool] = []
    real = grpc.insecure_channel

    def tracked(*args: Any, **kwargs: Any) -> grpc.Channel:
        channel = real(*args, **kwargs)
        original = channel.close
        channel.close = lambda: (closed.append(True), original())[1]  # type: ignore[method-assign]
        return channel

    monkeypatch.setattr(grpc, "insecure_channel", tracked)
    with pytest.raises(ValueError, match="target must not be empty"):
        open_channel(" ")
    assert closed == [True]


def test_intercept_channel_refuses_what_is_not_a_channel() -> None:
    """A wrong channel argument is a TypeError naming it."""
    with pytest.raises(TypeError, match=r"channel must be a grpc\.Channel"):
        intercept_channel("127.0.0.1:1", RpcPolicy(), target="t")  # type: ignore[arg-type]
