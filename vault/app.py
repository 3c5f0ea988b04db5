"""``create_app``: builds a node and its HTTP app; nothing global, so tests run several at once."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from quart import Response, g, request
from quart_trio import QuartTrio

from vault import errors
from vault.api import (
    auth_routes,
    chunk_routes,
    device_routes,
    file_routes,
    folder_routes,
    notification_routes,
    queue_routes,
    share_routes,
    sync_routes,
    trash_routes,
    tus_routes,
    upload_routes,
)
from vault.api.envelope import current_request_id, error_response
from vault.api.error_mapping import as_vault_error
from vault.api.openapi import build_openapi
from vault.api.raw import RawRequest, RawResponse, RawRoute, Receive, Scope, Send, serve_raw
from vault.api.request_log import log_request
from vault.api.routing import CONVERTERS, ApiRouter
from vault.api.system import docs as system_docs
from vault.api.system import system
from vault.chunks import ChunkBackend, StorageRefused, StorageUnavailable
from vault.clock import Clock
from vault.config import Config
from vault.node import Node


class VaultApp(QuartTrio):
    """Quart-Trio app with bare ASGI routes for streamed uploads in front of it."""

    node: Node
    raw_routes: list[RawRoute]
    openapi_document: bytes

    def log_exception(self, exception_info: Any) -> None:
        """Quart logs what fails at startup with its traceback; a chunk store that refuses or
        cannot be reached has said what is wrong in one line (``vault serve`` prints it), so that
        line is logged alone."""
        error = exception_info[1] if exception_info else None
        if isinstance(error, StorageRefused | StorageUnavailable):
            logging.getLogger("vault.app").error("chunk storage: %s", error)
            return
        super().log_exception(exception_info)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == "http":
            allowed: list[str] = []
            for route in self.raw_routes:
                params = route.match(scope["method"], scope["path"])
                if params is not None:
                    await serve_raw(self.node, route, scope, receive, send, params)
                    return
                if route.matches_path(scope["path"]):
                    allowed += [m for m in route.method_order if m not in allowed]
            if allowed:
                # A raw route's path with another method: 405 naming the methods it has (Quart,
                # which does not know these paths, would answer 404).
                route = RawRoute([scope["method"]], scope["path"], _not_allowed(allowed), "method_not_allowed")
                await serve_raw(self.node, route, scope, receive, send, {})
                return
            if _declared_length(scope) > int(self.config["MAX_CONTENT_LENGTH"]):
                # Refused before a byte of the body is read, and the connection closed after the
                # answer: Quart would answer 413 but keep the connection, whose unread body then
                # swallowed the next request.
                route = RawRoute([scope["method"]], scope["path"], self._too_large, "body_too_large")
                await serve_raw(self.node, route, scope, receive, send, {})
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]

    async def _too_large(self, req: RawRequest) -> RawResponse:
        limit = int(self.config["MAX_CONTENT_LENGTH"])
        raise errors.PayloadTooLarge("Request body too large", details={"limit": limit})


def _not_allowed(methods: list[str]) -> Callable[[RawRequest], Awaitable[RawResponse]]:
    async def refuse(req: RawRequest) -> RawResponse:
        raise errors.MethodNotAllowed(headers={"Allow": ", ".join(methods)})

    return refuse


def _declared_length(scope: Scope) -> int:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else 0
    return 0


def _routers() -> list[ApiRouter]:
    """Every API router of the node, in the order their routes are documented."""
    return [
        auth_routes.router,
        device_routes.router,
        upload_routes.router,
        file_routes.router,
        sync_routes.router,
        folder_routes.router,
        trash_routes.router,
        queue_routes.router,
        notification_routes.router,
        share_routes.router,
    ]


def _raw_routes() -> list[RawRoute]:
    return [*chunk_routes.routes(), *tus_routes.routes()]


def create_app(
    config: Config, *, clock: Clock | None = None, periodic: bool = True, backend: ChunkBackend | None = None
) -> VaultApp:
    """A ready-to-serve app: the node opens at startup and closes at shutdown (ASGI lifespan).
    ``periodic=False`` leaves out the periodic tasks (expiry, gc), for tests on a fake clock;
    ``backend`` replaces the configured chunk backend (a test's fake)."""
    app = VaultApp(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(config.server.max_json_body)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = float(config.server.body_read_timeout)
    node = Node(config, clock=clock, periodic=periodic, backend=backend)
    app.node = node
    app.raw_routes = _raw_routes()
    app.url_map.converters.update(CONVERTERS)
    app.register_blueprint(system)
    routers = _routers()
    for router in routers:
        app.register_blueprint(router.blueprint)
    docs = [d for r in routers for d in r.docs] + chunk_routes.docs(config) + tus_routes.docs() + system_docs()
    app.openapi_document = msgspec.json.encode(build_openapi(docs))
    _install_hooks(app)

    @app.before_serving
    async def start() -> None:
        await node.open()
        await app.nursery.start(node.run_background)

    @app.after_serving
    async def stop() -> None:
        await node.close()

    return app


def _install_hooks(app: VaultApp) -> None:
    @app.before_request
    async def begin() -> None:
        g.started = time.perf_counter()
        current_request_id()

    @app.after_request
    async def finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = current_request_id()
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        log_request(
            app.node.metrics,
            request_id=current_request_id(),
            method=request.method,
            route=route,
            status=response.status_code,
            seconds=time.perf_counter() - getattr(g, "started", time.perf_counter()),
        )
        return response

    @app.errorhandler(Exception)
    async def any_error(exc: Exception) -> Response:
        # VaultErrors, Quart's own HTTP errors and anything unexpected: the one mapping.
        error = as_vault_error(
            exc,
            request_id=current_request_id(),
            where=f"{request.method} {request.path}",
            body_limit=int(app.config["MAX_CONTENT_LENGTH"]),
        )
        response = error_response(error, current_request_id())
        if error.status in (408, 413):
            # The body was refused before it was read: what is left of it would be taken for the
            # next request on this connection, so it is not kept alive.
            response.headers["Connection"] = "close"
        return response
