"""Declaring API routes once: the handler, its request/response structs, auth, and its docs.

``ApiRouter`` wraps a Quart blueprint. Each route records the msgspec types it decodes and
answers, so the OpenAPI document is generated from the same structs the handlers use.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from quart import Blueprint, Request, Response, current_app, request
from werkzeug.routing import BaseConverter

from vault import errors
from vault.api.compression import json_bytes_response_offloaded
from vault.api.envelope import body_as, current_request_id, describe_error, success_body
from vault.api.json_codec import encode_json
from vault.api.origin import public_origin
from vault.principal import Principal

if TYPE_CHECKING:
    from vault.node import Node

API_PREFIX = "/api/mobile"


class UploadSessionConverter(BaseConverter):
    """``<session:upload_id>``: any segment but the actions beside it (``/upload/init`` ...), so
    that ``OPTIONS /upload/init`` allows POST alone instead of the session's GET and DELETE too."""

    regex = r"(?!(?:init|progress|complete)$)[^/]+"


CONVERTERS: dict[str, type[BaseConverter]] = {"session": UploadSessionConverter}


@dataclass
class Ctx:
    """What a handler gets besides its decoded body and path parameters."""

    node: Node
    request: Request
    request_id: str
    principal_or_none: Principal | None = None

    @property
    def origin(self) -> str:
        """Base for absolute URLs in answers (``[server] public_url`` or this request's origin)."""
        return public_origin(self.node.config.server.public_url, self.request.scheme, self.request.host)

    @property
    def principal(self) -> Principal:
        if self.principal_or_none is None:  # only auth=False routes have none
            raise RuntimeError("route declared auth=False has no principal")
        return self.principal_or_none


@dataclass
class RouteDoc:
    method: str
    path: str
    summary: str
    body: type | None = None
    response: type | None = None
    auth: bool = True
    status: int = 200
    envelope: bool = True
    query: type | None = None
    tags: list[str] = field(default_factory=list)
    # Path parameters that are not any string (``{"type": "integer", "minimum": 1}``).
    path_schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Request headers the route reads, by name.
    headers: dict[str, HeaderDoc] = field(default_factory=dict)
    # A body of raw bytes instead of JSON: its media type (and whether it must be there), and what it is.
    raw_body: str | None = None
    raw_body_required: bool = True
    raw_body_description: str | None = None
    # More success statuses answering the same struct (``status`` is the first, the usual one).
    also: tuple[tuple[int, str], ...] = ()
    # Error statuses worth naming (each answers the error envelope), with when.
    errors: tuple[tuple[int, str], ...] = ()
    # Answers besides the success one and the error envelope (OpenAPI response objects by status).
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    # OpenAPI links of the success answer: which operations take what it returned (``link``).
    links: dict[str, dict[str, Any]] = field(default_factory=dict)


def link(method: str, path: str, description: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link to the operation ``method path`` (a full documented path), its parameters
    taken from the answer by runtime expressions (``$response.body#/data/uploadId``)."""
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method.lower()}", "description": description, "parameters": parameters}


# A request header a route reads, for the OpenAPI document: (JSON schema, required, description).
HeaderDoc = tuple[dict[str, Any], bool, str]
Handler = Callable[..., Awaitable[Any]]
Q = TypeVar("Q")


def query_as(ctx: Ctx, kind: type[Q]) -> Q:
    """The request's query parameters decoded into ``kind`` (numbers from their text), or a
    ``VALIDATION_ERROR`` naming the parameter."""
    try:
        return msgspec.convert(dict(ctx.request.args), kind, strict=False)
    except msgspec.ValidationError as exc:
        message, details = describe_error(exc)
        raise errors.ValidationError(message, details=details or None) from None


async def respond(ctx: Ctx, data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """The success envelope around ``data`` with extra headers (an ETag, say)."""
    response = await json_bytes_response_offloaded(encode_json(success_body(data)), ctx.node.offload, status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ApiRouter:
    """A group of routes under ``/api/mobile`` (or ``prefix``)."""

    def __init__(self, name: str, *, prefix: str = API_PREFIX, tag: str | None = None) -> None:
        self.blueprint = Blueprint(name, __name__, url_prefix=prefix)
        self.prefix = prefix
        self.tag = tag or name
        self.docs: list[RouteDoc] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        body: type | None = None,
        response: type | None = None,
        query: type | None = None,
        auth: bool = True,
        status: int = 200,
        envelope: bool = True,
        summary: str = "",
        path_schemas: dict[str, dict[str, Any]] | None = None,
        links: dict[str, dict[str, Any]] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register ``handler(ctx, [body,] **path_params)``.

        A handler returns a ``Response`` as is, or a value to send as ``data`` in the success
        envelope with ``status``. ``envelope=False`` documents a route answering top-level fields.
        """

        def decorate(handler: Handler) -> Handler:
            @functools.wraps(handler)
            async def endpoint(**params: Any) -> Response:
                node: Node = current_app.node  # type: ignore[attr-defined]
                ctx = Ctx(node=node, request=request, request_id=current_request_id())
                if auth:
                    ctx.principal_or_none = await node.authenticate(request.headers.get("Authorization"))
                if body is not None:
                    result = await handler(ctx, await body_as(body), **params)
                else:
                    result = await handler(ctx, **params)
                if isinstance(result, Response):
                    return result
                data = encode_json(success_body(result))
                return await json_bytes_response_offloaded(data, node.offload, status)

            endpoint.__name__ = f"{method.lower()}_{handler.__name__}"
            self.blueprint.add_url_rule(path, view_func=endpoint, methods=[method])
            doc_path = self.prefix + path.replace("<", "{").replace(">", "}")
            for conv in ("string:", "path:", "int:", *(f"{name}:" for name in CONVERTERS)):
                doc_path = doc_path.replace("{" + conv, "{")
            self.docs.append(
                RouteDoc(
                    method=method,
                    path=doc_path,
                    summary=summary or (handler.__doc__ or "").strip().splitlines()[0]
                    if (summary or handler.__doc__)
                    else handler.__name__,
                    body=body,
                    response=response,
                    auth=auth,
                    status=status,
                    envelope=envelope,
                    query=query,
                    tags=[self.tag],
                    path_schemas=path_schemas or {},
                    links=links or {},
                )
            )
            return handler

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)
