"""OpenAPI 3.1 generated from the routes' msgspec structs (never written by hand)."""

from __future__ import annotations

from typing import Any

import msgspec

from vault import __version__
from vault.api.routing import RouteDoc
from vault.wire import WireAnswer


class ErrorDetail(WireAnswer):
    code: str
    message: str
    request_id: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(WireAnswer):
    success: bool
    error: ErrorDetail


def _operation(doc: RouteDoc, refs: dict[type, dict[str, Any]]) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": doc.summary, "tags": doc.tags}
    params = [
        {"name": name, "in": "path", "required": True, "schema": doc.path_schemas.get(name, {"type": "string"})}
        for name in _path_params(doc.path)
    ]
    for name, (header_schema, required, description) in doc.headers.items():
        params.append(
            {"name": name, "in": "header", "required": required, "schema": header_schema, "description": description}
        )
    if doc.query is not None:
        for field in msgspec.structs.fields(doc.query):
            params.append(
                {
                    "name": field.encode_name,
                    "in": "query",
                    "required": field.required,
                    "schema": msgspec.json.schema(field.type),
                }
            )
    if params:
        op["parameters"] = params
    if doc.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[doc.body]}},
        }
    elif doc.raw_body is not None:
        op["requestBody"] = {
            "required": doc.raw_body_required,
            **({"description": doc.raw_body_description} if doc.raw_body_description else {}),
            "content": {doc.raw_body: {"schema": {"type": "string", "format": "binary"}}},
        }
    if doc.response is not None:
        inner = refs[doc.response]
        if doc.envelope:
            schema: dict[str, Any] = {
                "type": "object",
                "properties": {"success": {"const": True}, "data": inner},
                "required": ["success", "data"],
            }
        else:
            schema = {"allOf": [{"type": "object", "properties": {"success": {"const": True}}}, inner]}
        ok = {"description": "Success", "content": {"application/json": {"schema": schema}}}
    else:
        ok = {"description": "Success"}
    if doc.links:
        ok = {**ok, "links": doc.links}
    envelope = {"application/json": {"schema": refs[ErrorEnvelope]}}
    op["responses"] = {
        str(doc.status): ok,
        **{str(status): {**ok, "description": text} for status, text in doc.also},
        **{str(status): {"description": text, "content": envelope} for status, text in doc.errors},
        **doc.responses,
        "default": {"description": "Error envelope", "content": envelope},
    }
    if doc.auth:
        op["security"] = [{"bearer": []}]
    return op


def _path_params(path: str) -> list[str]:
    names: list[str] = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            names.append(part[1:-1])
    return names


def build_openapi(docs: list[RouteDoc]) -> dict[str, Any]:
    types: list[type] = [ErrorEnvelope]
    for doc in docs:
        for kind in (doc.body, doc.response):
            if kind is not None and kind not in types:
                types.append(kind)
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    for kind in types:
        # What a struct's fields cannot say (such as "at least one of these"), in the schema's words.
        extra = getattr(kind, "__openapi_extra__", None)
        if extra:
            components[kind.__name__].update(extra)
    refs = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for doc in docs:
        paths.setdefault(doc.path, {})[doc.method.lower()] = _operation(doc, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "MegaVault node mobile API", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
