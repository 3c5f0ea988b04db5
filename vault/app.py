"""``create_app``: builds a node and its HTTP app; nothing global, so tests run several at once."""

from __future__ import annotations

import logging
import time

import msgspec
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from vault import errors
from vault.api.envelope import current_request_id, error_response
from vault.api.openapi import build_openapi
from vault.api.raw import RawRoute, Receive, Scope, Send, serve_raw
from vault.api.routing import ApiRouter
from vault.api.system import system
from vault.clock import Clock
from vault.config import Config
from vault.node import Node

log = logging.getLogger("vault.api")


class VaultApp(QuartTrio):
    """Quart-Trio app with bare ASGI routes for streamed uploads in front of it."""

    node: Node
    raw_routes: list[RawRoute]
    openapi_document: bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:  # type: ignore[override]
        if scope["type"] == "http":
            for route in self.raw_routes:
                params = route.match(scope["method"], scope["path"])
                if params is not None:
                    await serve_raw(self.node, route, scope, receive, send, params)
                    return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]


def _routers() -> list[ApiRouter]:
    """Every API router of the node, in the order their routes are documented."""
    from vault.api import auth_routes, device_routes, file_routes, upload_routes

    return [auth_routes.router, device_routes.router, upload_routes.router, file_routes.router]


def _raw_routes(node: Node) -> list[RawRoute]:
    from vault.api import chunk_route
    from vault.tus import routes as tus_routes

    return [*chunk_route.routes(), *tus_routes.routes()]


def create_app(config: Config, *, clock: Clock | None = None) -> VaultApp:
    """A ready-to-serve app: the node opens at startup and closes at shutdown (ASGI lifespan)."""
    app = VaultApp(__name__)
    app.config["MAX_CONTENT_LENGTH"] = int(config.server.max_json_body)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = float(config.server.body_read_timeout)
    node = Node(config, clock=clock)
    app.node = node
    app.raw_routes = _raw_routes(node)
    app.register_blueprint(system)
    routers = _routers()
    for router in routers:
        app.register_blueprint(router.blueprint)
    from vault.api import chunk_route

    docs = [d for r in routers for d in r.docs] + chunk_route.docs()
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
        elapsed = time.perf_counter() - getattr(g, "started", time.perf_counter())
        app.node.metrics.observe(request.method, route, response.status_code, elapsed)
        log.info(
            "request",
            extra={
                "request_id": current_request_id(),
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        return response

    @app.errorhandler(errors.VaultError)
    async def vault_error(exc: errors.VaultError) -> Response:
        return error_response(exc, current_request_id())

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        mapped: errors.VaultError
        code = exc.code or 500
        if code == 404:
            mapped = errors.NotFound("No such endpoint")
        elif code == 405:
            mapped = errors.MethodNotAllowed()
        elif code == 413:
            mapped = errors.PayloadTooLarge(
                "Request body too large", details={"limit": app.config["MAX_CONTENT_LENGTH"]}
            )
        elif code == 408:
            mapped = errors.ValidationError("Request body was not received in time")
        elif 400 <= code < 500:
            mapped = errors.ValidationError(exc.description or "Bad request")
        else:
            mapped = errors.InternalError()
        response = error_response(mapped, current_request_id())
        if code == 405 and exc.get_headers():
            for key, value in exc.get_headers():
                if key.lower() == "allow":
                    response.headers["Allow"] = value
        return response

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.error(
            "unhandled error in %s %s",
            request.method,
            request.path,
            exc_info=exc,
            extra={"request_id": current_request_id()},
        )
        return error_response(errors.InternalError(), current_request_id())
