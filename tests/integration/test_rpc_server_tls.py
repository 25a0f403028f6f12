"""TLS and mTLS with server_credentials(), for real: certificates made by openssl in the test.

A CA signs a server certificate (localhost, 127.0.0.1) and a client certificate; a second
CA signs a client certificate the server must not accept. Channels override the target
name to "localhost" so the server certificate's name is checked, as a real client would.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rpc_server_support import Switch, manager_with

from engined.rpc import add_to_server, server_credentials
from engined.v1 import engined_pb2 as pb
from engined.v1 import engined_pb2_grpc

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]

SERVING = health_pb2.HealthCheckResponse.SERVING
TOKEN = (("authorization", "Bearer t0ken"),)


@dataclass(frozen=True)
class Pki:
    """PEM bytes of everything the tests need."""

    ca: bytes
    server_cert: bytes
    server_key: bytes
    client_cert: bytes
    client_key: bytes
    other_ca: bytes
    stranger_cert: bytes  # a client certificate signed by other_ca
    stranger_key: bytes


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(cwd: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=cwd,
    )  # fmt: skip


def _leaf(cwd: Path, name: str, ca: str, extensions: str) -> None:
    (cwd / f"{name}.ext").write_text(extensions)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=cwd,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext",
        cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A fresh CA, server and client certificates, and a stranger from another CA."""
    cwd = tmp_path_factory.mktemp("pki")
    _ca(cwd, "ca")
    _ca(cwd, "other-ca")
    _leaf(
        cwd,
        "server",
        "ca",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    _leaf(cwd, "client", "ca", "extendedKeyUsage=clientAuth\n")
    _leaf(cwd, "stranger", "other-ca", "extendedKeyUsage=clientAuth\n")

    def read(name: str) -> bytes:
        return (cwd / name).read_bytes()

    return Pki(
        ca=read("ca.pem"),
        server_cert=read("server.pem"),
        server_key=read("server.key"),
        client_cert=read("client.pem"),
        client_key=read("client.key"),
        other_ca=read("other-ca.pem"),
        stranger_cert=read("stranger.pem"),
        stranger_key=read("stranger.key"),
    )


@contextlib.asynccontextmanager
async def _secure_server(pki: Pki, *, mutual: bool) -> AsyncIterator[int]:
    server = grpc.aio.server()
    manager = manager_with(db=Switch())
    await manager.run_all()
    add_to_server(server, manager, admin_token="t0ken")
    credentials = server_credentials(
        pki.server_cert, pki.server_key, client_ca=pki.ca if mutual else None
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)
        await manager.stop()


def _channel(
    port: int, *, root: bytes, cert: bytes | None = None, key: bytes | None = None
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root, private_key=key, certificate_chain=cert
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


async def _check(channel: grpc.aio.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service="db"), timeout=5)
    status: int = reply.status
    return status


async def _refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _check(channel)
    code: grpc.StatusCode = caught.value.code()
    return code


async def test_tls_serves_a_client_that_trusts_the_server_ca(pki: Pki) -> None:
    """Over TLS, a client trusting the CA gets health and engined replies."""
    async with (
        _secure_server(pki, mutual=False) as port,
        _channel(port, root=pki.ca) as channel,
    ):
        assert await _check(channel) == SERVING
        stub = engined_pb2_grpc.EnginedStub(channel)
        reply = await stub.ResetHeal(pb.ResetHealRequest(name="db"), metadata=TOKEN, timeout=5)
        assert reply.component.name == "db"


async def test_tls_refuses_a_plaintext_client(pki: Pki) -> None:
    """A TLS port does not answer a plaintext HTTP/2 client."""
    async with (
        _secure_server(pki, mutual=False) as port,
        grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
    ):
        assert await _refused(channel) is grpc.StatusCode.UNAVAILABLE


async def test_a_client_that_does_not_trust_the_server_certificate_fails(pki: Pki) -> None:
    """A client with another root refuses the server's certificate: the call never runs."""
    async with (
        _secure_server(pki, mutual=False) as port,
        _channel(port, root=pki.other_ca) as channel,
    ):
        assert await _refused(channel) is grpc.StatusCode.UNAVAILABLE


async def test_mtls_serves_a_client_with_a_certificate_from_the_client_ca(pki: Pki) -> None:
    """With client_ca set, a client presenting a certificate signed by it is served."""
    async with _secure_server(pki, mutual=True) as port:
        channel = _channel(port, root=pki.ca, cert=pki.client_cert, key=pki.client_key)
        async with channel:
            assert await _check(channel) == SERVING
            stub = engined_pb2_grpc.EnginedStub(channel)
            await stub.GetSystemHealth(pb.GetSystemHealthRequest(), timeout=5)


async def test_mtls_refuses_a_client_without_a_certificate(pki: Pki) -> None:
    """With client_ca set, a client that presents no certificate is refused in the handshake."""
    async with _secure_server(pki, mutual=True) as port, _channel(port, root=pki.ca) as channel:
        assert await _refused(channel) is grpc.StatusCode.UNAVAILABLE


async def test_mtls_refuses_a_client_certificate_from_another_ca(pki: Pki) -> None:
    """A client certificate not signed by client_ca is refused, even with the right token."""
    async with _secure_server(pki, mutual=True) as port:
        channel = _channel(port, root=pki.ca, cert=pki.stranger_cert, key=pki.stranger_key)
        async with channel:
            assert await _refused(channel) is grpc.StatusCode.UNAVAILABLE
            stub = engined_pb2_grpc.EnginedStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ResetHeal(pb.ResetHealRequest(name="db"), metadata=TOKEN, timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_server_credentials_want_pem_bytes(pki: Pki) -> None:
    """A str (a path, say) is a TypeError, non-PEM bytes a ValueError; each names its argument."""
    with pytest.raises(TypeError, match="cert_chain must be PEM bytes"):
        server_credentials("server.pem", pki.server_key)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="private_key is not PEM"):
        server_credentials(pki.server_cert, b"not a key")
    with pytest.raises(TypeError, match="client_ca"):
        server_credentials(pki.server_cert, pki.server_key, client_ca="ca.pem")  # type: ignore[arg-type]
