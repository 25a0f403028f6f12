"""The running daemon: gRPC and HTTP servers around one health manager, stopped by a signal.

Start-up binds both ports before any check runs, so a port in use fails at once and no
heal command has fired. Then the manager starts and the daemon waits for a signal
(``loop.add_signal_handler``, on the loop, never inside a gRPC callback):

- SIGTERM or SIGINT stops it (DESIGN.md §7, grpc/grpc PR #26622): ``/readyz`` answers
  503 and every health service NOT_SERVING (open Watch streams hear it at once); ``drain``
  seconds pass while calls are still served, so probes and balancers notice; every watch
  stream is ended; ``server.stop(grace)`` lets in-flight calls finish; the HTTP server
  closes; the manager stops (it does not wait on hung checks). Each step is bounded, so
  the daemon is gone within ``drain + grace`` plus about 1.5 s.
- SIGHUP reloads the config (:mod:`engined.daemon._reload`); a refused one changes
  nothing. A reload runs on the loop between other work, so two never overlap.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc.aio

from engined import (
    SYSTEM_CLOCK,
    CircuitBreakerRegistry,
    Clock,
    HealthCheckManager,
    default_registry,
)
from engined.daemon._build import Registration, build, close, register
from engined.daemon._config import DaemonConfig, ServerSection
from engined.daemon._config_errors import ConfigError
from engined.daemon._config_load import parse_config
from engined.daemon._endpoints import ServingState, add_routes
from engined.daemon._events import EventRing
from engined.daemon._http import HttpServer, Router
from engined.daemon._logging import EventLog, fields
from engined.daemon._metrics import CONTENT_TYPE, DaemonMetrics
from engined.daemon._reload import apply, plan
from engined.daemon._web import add_status_routes
from engined.rpc import EnginedServices, add_to_server, server_credentials
from engined.rpc._convert import wall_time_ns as real_wall_time_ns

__all__ = ["Daemon", "StartupError"]

_log = logging.getLogger("engined.daemon")

_GRPC_OPTIONS = (("grpc.so_reuseport", 0),)  # a port in use must fail, not be shared


class StartupError(Exception):
    """The daemon could not start; the message is one line, ``exit_code`` the exit status."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


class Daemon:
    """One run of ``engined serve``.

    Args:
        config: The validated config, as the file has it.
        registrations: Its checks, built (:func:`engined.daemon._build.build`).
        config_path: The file SIGHUP re-reads; ``None`` when serving without one.
        manager: The manager to serve (default: a new one).
        breakers: The breakers to serve (default: ``engined.default_registry()``).
        overrides: ``[server]`` values given on the command line (host, port,
            metrics_port); they win over the file's, at start and on reload.
        clock: Waits out the drain.
        wall_time_ns: Stamps the status page's events and documents (real time by
            default: they are read by people and clients, not measured with).
    """

    def __init__(
        self,
        config: DaemonConfig,
        registrations: dict[str, Registration],
        *,
        config_path: Path | None = None,
        manager: HealthCheckManager | None = None,
        breakers: CircuitBreakerRegistry | None = None,
        overrides: dict[str, object] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        wall_time_ns: Callable[[], int] = real_wall_time_ns,
    ) -> None:
        self.config = config
        self.server = config.server.model_copy(update=overrides or {})
        self.manager = manager if manager is not None else HealthCheckManager()
        self.breakers = breakers if breakers is not None else default_registry()
        self.state = ServingState()
        self.grpc_port = 0
        self.metrics_port = 0
        self._registrations = registrations
        self._config_path = config_path
        self._clock = clock
        self._wall_time_ns = wall_time_ns
        self.events = EventRing(wall_time_ns, breakers=self.breakers)
        self._stop: asyncio.Event | None = None
        self._server: grpc.aio.Server | None = None
        self._services: EnginedServices | None = None
        self._http: HttpServer | None = None
        self._closing: set[asyncio.Task[None]] = set()  # retired checks being closed

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, on_started: Callable[[Daemon], None] | None = None) -> int:
        """Serve until SIGTERM or SIGINT, then stop gracefully; return the exit status (0).

        Raises:
            StartupError: A port cannot be bound, or TLS or the admin token is unusable.
        """
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        if on_started is not None:
            on_started(self)
        try:
            await self._stop.wait()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            await self._shutdown()
        return 0

    def request_stop(self, reason: str = "request") -> None:
        """Begin the graceful stop (what SIGTERM and SIGINT do)."""
        if self._stop is None or self._stop.is_set():
            _log.info("already stopping (%s ignored)", reason, extra=fields(signal=reason))
            return
        _log.info("%s: stopping", reason, extra=fields(event="stopping", signal=reason))
        self._stop.set()

    async def _start(self) -> None:
        server_cfg = self.server
        metrics = DaemonMetrics.build(self.manager, self.breakers)
        self._server = grpc.aio.server(interceptors=metrics.interceptors, options=_GRPC_OPTIONS)
        try:
            self._services = add_to_server(
                self._server, self.manager, registry=self.breakers, admin_token=_token(server_cfg)
            )
        except ValueError as exc:
            msg = f"server.admin_token_env: {exc}"
            raise StartupError(msg, exit_code=2) from None
        self.grpc_port = self._bind_grpc(self._server, server_cfg)
        router = Router()
        add_routes(
            router,
            manager=self.manager,
            state=self.state,
            render_metrics=metrics.render,
            metrics_content_type=CONTENT_TYPE,
        )
        add_status_routes(
            router,
            manager=self.manager,
            breakers=self.breakers,
            events=self.events,
            depends_on=self.depends_on,
            wall_time_ns=self._wall_time_ns,
        )
        self._http = HttpServer(router, server_cfg.host, server_cfg.metrics_port)
        try:
            await self._http.start()
        except OSError as exc:
            where = _address(server_cfg.host, server_cfg.metrics_port)
            msg = f"cannot listen on {where} (metrics): {exc.strerror}"
            raise StartupError(msg) from None
        self.metrics_port = self._http.port
        await self._server.start()
        self.manager.add_listener(EventLog())
        self.manager.add_listener(self.events)
        self.events.follow_breakers()
        register(self.manager, self._registrations)
        await self.manager.start()
        grpc_at = _address(server_cfg.host, self.grpc_port)
        metrics_at = f"http://{_address(server_cfg.host, self.metrics_port)}/metrics"
        _log.info(
            "serving gRPC on %s, metrics on %s",
            grpc_at,
            metrics_at,
            extra=fields(
                event="serving",
                grpc=grpc_at,
                metrics=metrics_at,
                tls=server_cfg.tls_cert is not None,
                pid=os.getpid(),
            ),
        )

    def depends_on(self) -> dict[str, tuple[str, ...]]:
        """Each configured component's ``depends_on`` parents, as the running config has them."""
        return {check.name: tuple(check.depends_on) for check in self.config.checks}

    def _bind_grpc(self, server: grpc.aio.Server, cfg: ServerSection) -> int:
        address = _address(cfg.host, cfg.port)
        try:
            if cfg.tls_cert is None or cfg.tls_key is None:
                return int(server.add_insecure_port(address))
            ca = cfg.tls_client_ca.read_bytes() if cfg.tls_client_ca is not None else None
            credentials = server_credentials(
                cfg.tls_cert.read_bytes(), cfg.tls_key.read_bytes(), client_ca=ca
            )
            return int(server.add_secure_port(address, credentials))
        except (OSError, ValueError, TypeError) as exc:
            msg = f"server TLS: {exc}"
            raise StartupError(msg, exit_code=2) from None
        except RuntimeError:
            msg = f"cannot listen on {address} (gRPC): address in use?"
            raise StartupError(msg) from None

    async def _shutdown(self) -> None:
        """NOT_SERVING, drain, streams ended, gRPC stopped, HTTP closed, manager stopped."""
        server_cfg = self.server
        self.state.draining = True
        if self._services is not None:
            self._services.enter_graceful_shutdown()
            _log.info(
                "NOT_SERVING; draining for %g s",
                server_cfg.drain,
                extra=fields(event="draining", drain=server_cfg.drain),
            )
            if server_cfg.drain:
                await self._clock.sleep_async(server_cfg.drain)
            self._services.close_streams()
        await self._close()
        _log.info("stopped", extra=fields(event="stopped"))

    async def _close(self) -> None:
        grace = self.server.grace
        if self._server is not None:
            try:
                await asyncio.wait_for(self._server.stop(grace), timeout=grace + 1.0)
            except TimeoutError:
                _log.warning("the gRPC server did not stop within %g s", grace + 1.0)
        if self._http is not None:
            await self._http.close()
        try:
            await asyncio.wait_for(self.manager.stop(), timeout=2.0)
        except TimeoutError:
            _log.warning("the health manager did not stop within 2 s")
        self._retire(self._registrations.values())
        if self._closing:
            await asyncio.wait(self._closing, timeout=1.5)

    def _retire(self, registrations: Iterable[Registration]) -> None:
        """Close ``registrations`` in the background (a reload runs in a signal handler)."""
        task = asyncio.get_running_loop().create_task(close(list(registrations)))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # ------------------------------------------------------------------ reload

    def reload(self) -> bool:
        """Re-read the config file and apply the difference; ``False`` if it was refused.

        A refused config is logged in one line naming the key; the running one is kept.
        """
        if self._config_path is None:
            _log.warning("SIGHUP: no config file to reload", extra=fields(event="reload"))
            return False
        if self._stop is not None and self._stop.is_set():
            return False
        path = self._config_path
        try:
            text = path.read_text(encoding="utf-8")
            new = parse_config(text, path)
            built = build(new, file=path, text=text)
        except ConfigError as exc:
            _log.error(
                "config reload refused, keeping the running config: %s",
                exc,
                extra=fields(event="reload_refused", path=str(path), key=exc.path, line=exc.line),
            )
            return False
        except OSError as exc:
            _log.error(
                "config reload refused, keeping the running config: %s: %s",
                path,
                exc.strerror,
                extra=fields(event="reload_refused", path=str(path)),
            )
            return False
        change = plan(self.config.checks, new.checks)
        apply(self.manager, change, built)
        old = self._registrations
        retired = [old[name] for name in (*change.removed, *change.changed) if name in old]
        retired += [built[name] for name in change.kept]  # unused copies of the kept ones
        self._retire(retired)
        if new.server != self.config.server:
            _log.warning(
                "config reload: [server] changes take effect on restart",
                extra=fields(event="reload_server_ignored"),
            )
        self.config = self.config.model_copy(update={"checks": new.checks})  # [server] stays
        self._registrations = {
            name: old[name] if name in change.kept and name in old else item
            for name, item in built.items()
        }  # a kept component runs the check object it was registered with
        _log.info(
            "config reloaded from %s: %d kept, %d changed, %d added, %d removed",
            path,
            len(change.kept),
            len(change.changed),
            len(change.added),
            len(change.removed),
            extra=fields(
                event="config_reloaded",
                path=str(path),
                kept=",".join(change.kept),
                changed=",".join(change.changed),
                added=",".join(change.added),
                removed=",".join(change.removed),
            ),
        )
        return True


def _token(cfg: ServerSection) -> str | None:
    if cfg.admin_token_env is None:
        return None
    token = os.environ.get(cfg.admin_token_env, "")
    if not token:
        _log.warning(
            "admin RPCs refused: $%s is not set",
            cfg.admin_token_env,
            extra=fields(event="admin_disabled", env=cfg.admin_token_env),
        )
        return None
    return token
