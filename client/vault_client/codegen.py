"""Generate ``vault_client/wire.py`` (msgspec structs and the endpoint table) from the node's
OpenAPI document, so the client's types come from the same structs the node decodes and answers
and cannot drift by hand.

    python -m vault_client.codegen --url http://127.0.0.1:8080 -o client/vault_client/wire.py
    python -m vault_client.codegen --file openapi.json > wire.py

``render(document)`` is pure: the test suite renders the running node's document and compares it
with the committed module, so a node change that forgets the client fails CI.
"""

from __future__ import annotations

import argparse
import json
import keyword
import re
import sys
from collections.abc import Sequence
from typing import Any

HEADER = '''"""The node's wire structs and endpoints, generated from its OpenAPI document. Do not edit:
regenerate with ``make client-wire`` (``python -m vault_client.codegen``)."""

# ruff: noqa: E501
from __future__ import annotations

from typing import Annotated, Any, Literal, NamedTuple

import msgspec
from msgspec import Meta


class Request(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of what the client sends (defaults left out: the node has the same ones)."""


class Answer(msgspec.Struct, kw_only=True, rename="camel"):
    """Base of what the node answers (fields a newer node adds are ignored)."""


class Query(msgspec.Struct, kw_only=True, rename="camel", omit_defaults=True):
    """Base of an endpoint's query parameters."""


class Endpoint(NamedTuple):
    method: str
    path: str  # with ``{name}`` placeholders
    body: type | None  # the JSON request struct, if any
    answer: type | None  # the struct in ``data`` (or at top level when ``envelope`` is false)
    query: type | None
    envelope: bool  # ``{"success": true, "data": ...}`` rather than fields at the top level
    auth: bool
    status: int
'''

_REF = "#/components/schemas/"
_SKIP_PATHS = ("/metrics",)  # the Prometheus text format: not for apps


def struct_name(component: str) -> str:
    """``vault.api.auth_routes.RegisterAnswer`` -> ``AuthRegisterAnswer`` (msgspec qualifies a
    name only when two structs share it); plain names stay as they are."""
    if "." not in component:
        return component
    *modules, name = component.split(".")
    for module in reversed(modules):
        if module not in ("wire", "api", "vault"):
            prefix = module.removesuffix("_routes")
            return "".join(part.capitalize() for part in prefix.split("_")) + name
    return name


def snake(name: str) -> str:
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return out + "_" if keyword.iskeyword(out) else out


def camel(name: str) -> str:
    """msgspec's ``rename="camel"`` of a snake_case attribute."""
    head, *rest = name.rstrip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class _Renderer:
    def __init__(self, document: dict[str, Any]) -> None:
        self.schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
        self.paths: dict[str, Any] = document.get("paths", {})
        self.tags: dict[str, tuple[str, str]] = {}  # component -> (tag field, tag value)
        self.requests: set[str] = set()
        for schema in self.schemas.values():
            self._note_tags(schema)
        for name, schema in self.schemas.items():
            if schema.get("additionalProperties") is False:
                self.requests.add(name)

    def _note_tags(self, node: Any) -> None:
        if isinstance(node, dict):
            disc = node.get("discriminator")
            if isinstance(disc, dict):
                for value, ref in disc.get("mapping", {}).items():
                    self.tags[ref.removeprefix(_REF)] = (disc["propertyName"], value)
            for child in node.values():
                self._note_tags(child)
        elif isinstance(node, list):
            for child in node:
                self._note_tags(child)

    # -- types --------------------------------------------------------------------------------

    def type_of(self, schema: dict[str, Any]) -> str:
        if "$ref" in schema:
            return struct_name(schema["$ref"].removeprefix(_REF))
        if "anyOf" in schema:
            parts = [self.type_of(s) for s in schema["anyOf"]]
            return " | ".join(dict.fromkeys(parts))
        if "allOf" in schema and len(schema["allOf"]) == 1:
            return self.type_of(schema["allOf"][0])
        if "enum" in schema:
            return "Literal[" + ", ".join(repr(v) for v in schema["enum"]) + "]"
        if "const" in schema:
            return f"Literal[{schema['const']!r}]"
        kind = schema.get("type")
        base = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "null": "None"}.get(
            kind if isinstance(kind, str) else ""
        )
        if kind == "array":
            base = f"list[{self.type_of(schema.get('items', {}))}]"
        elif kind == "object":
            extra = schema.get("additionalProperties")
            base = f"dict[str, {self.type_of(extra)}]" if isinstance(extra, dict) and extra else "dict[str, Any]"
        elif base is None:
            return "Any"
        meta = self._meta(schema)
        return f"Annotated[{base}, Meta({meta})]" if meta else base

    @staticmethod
    def _meta(schema: dict[str, Any]) -> str:
        pairs = []
        for key, arg in (
            ("minLength", "min_length"),
            ("maxLength", "max_length"),
            ("pattern", "pattern"),
            ("minimum", "ge"),
            ("maximum", "le"),
            ("minItems", "min_length"),
            ("maxItems", "max_length"),
        ):
            if key in schema:
                pairs.append(f"{arg}={schema[key]!r}")
        return ", ".join(pairs)

    # -- structs ------------------------------------------------------------------------------

    def struct(self, component: str) -> str:
        schema = self.schemas[component]
        name = struct_name(component)
        base = "Request" if component in self.requests else "Answer"
        options = ", kw_only=True"  # per class: msgspec does not inherit it
        tag = self.tags.get(component)
        if tag is not None:
            options += f", tag_field={tag[0]!r}, tag={tag[1]!r}"
        lines = [f"class {name}({base}{options}):"]
        if schema.get("description"):
            lines.append(f"    {_docstring(schema['description'])}")
        required = set(schema.get("required", []))
        fields = []
        for wire, prop in schema.get("properties", {}).items():
            if tag is not None and wire == tag[0]:
                continue  # msgspec writes and checks the tag itself
            fields.append((wire, prop, wire in required))
        if not fields and not schema.get("description"):
            lines.append("    pass")
        for wire, prop, is_required in fields:
            attr = snake(wire)
            kind = self.type_of(prop)
            named = camel(attr) != wire
            if is_required:
                default = f" = msgspec.field(name={wire!r})" if named else ""
            else:
                if "default" in prop:
                    value = prop["default"]
                else:
                    value = None
                    if "None" not in kind.split(" | "):
                        kind = f"{kind} | None"
                default = " = " + _default(value, named, wire)
            lines.append(f"    {attr}: {kind}{default}")
        return "\n".join(lines)

    # -- endpoints ----------------------------------------------------------------------------

    def endpoints(self) -> tuple[list[str], list[str]]:
        queries: list[str] = []
        table: list[str] = []
        for path, operations in self.paths.items():
            if path in _SKIP_PATHS:
                continue
            for method, op in operations.items():
                constant = _constant(method, path)
                body = _schema_ref(op.get("requestBody", {}))
                status, answer, envelope = self._answer(op)
                query = None
                params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
                if params:
                    query = "".join(part.capitalize() for part in constant.lower().split("_")) + "Query"
                    lines = [f"class {query}(Query, kw_only=True):"]
                    for param in params:
                        attr = snake(param["name"])
                        kind = self.type_of(param.get("schema", {}))
                        if "None" not in kind.split(" | "):
                            kind = f"{kind} | None"
                        default = _default(None, camel(attr) != param["name"], param["name"])
                        lines.append(f"    {attr}: {kind} = {default}")
                    queries.append("\n".join(lines))
                summary = " ".join(str(op.get("summary", "")).split())
                if summary:
                    table.append(f"# {summary}")
                table.append(
                    f"{constant} = Endpoint({method.upper()!r}, {path!r}, {body or 'None'}, {answer or 'None'}, "
                    f"{query or 'None'}, envelope={envelope}, auth={bool(op.get('security'))}, status={status})"
                )
        return queries, table

    def _answer(self, op: dict[str, Any]) -> tuple[int, str | None, bool]:
        for code, response in op.get("responses", {}).items():
            if code == "default":
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                return int(code), None, False
            data = schema.get("properties", {}).get("data")
            if data is not None:
                return int(code), self.type_of(data), True
            for part in schema.get("allOf", []):
                if "$ref" in part:
                    return int(code), self.type_of(part), False
            return int(code), None, False
        return 200, None, False

    def render(self) -> str:
        structs = [self.struct(name) for name in sorted(self.schemas, key=struct_name)]
        queries, table = self.endpoints()
        parts = [HEADER.rstrip("\n"), *structs, *queries]
        return "\n\n\n".join(parts) + "\n\n\n" + "\n".join(table) + "\n"


def _docstring(text: str) -> str:
    flat = " ".join(text.replace("``", "`").split()).replace('"""', "'''").replace("\\", "\\\\")
    return f'"""{flat}"""'


def _default(value: Any, named: bool, wire: str) -> str:
    if isinstance(value, list | dict) and value:
        raise ValueError(f"non-empty mutable default for {wire}")
    if isinstance(value, list):
        core = "default_factory=list"
    elif isinstance(value, dict):
        core = "default_factory=dict"
    else:
        if not named:
            return repr(value)
        core = f"default={value!r}"
    return f"msgspec.field({core}, name={wire!r})" if named else f"msgspec.field({core})"


def _schema_ref(request_body: dict[str, Any]) -> str | None:
    schema = request_body.get("content", {}).get("application/json", {}).get("schema")
    if not schema or "$ref" not in schema:
        return None
    return struct_name(schema["$ref"].removeprefix(_REF))


def _constant(method: str, path: str) -> str:
    """``PUT /api/mobile/upload/{upload_id}/chunks/{index}`` -> ``PUT_UPLOAD_UPLOAD_ID_CHUNKS_INDEX``."""
    segments = [s.strip("{}") for s in path.split("/") if s and s not in ("api", "mobile")]
    words = [method.upper()] + [re.sub(r"[^A-Za-z0-9]+", "_", s).upper() for s in segments]
    return "_".join(w for w in words if w) or method.upper()


def render(document: dict[str, Any]) -> str:
    """The text of ``wire.py`` for an OpenAPI document (deterministic: same input, same bytes)."""
    return _Renderer(document).render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vault_client.codegen", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--url", help="a running node's base URL (its /api/mobile/openapi.json is read)")
    source.add_argument("--file", help="an OpenAPI JSON file ('-' for standard input)")
    parser.add_argument("-o", "--output", help="where to write (default: standard output)")
    args = parser.parse_args(argv)
    if args.url:
        import httpx

        response = httpx.get(args.url.rstrip("/") + "/api/mobile/openapi.json", timeout=30)
        response.raise_for_status()
        document = response.json()
    elif args.file == "-":
        document = json.load(sys.stdin)
    else:
        with open(args.file, encoding="utf-8") as handle:
            document = json.load(handle)
    text = render(document)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
