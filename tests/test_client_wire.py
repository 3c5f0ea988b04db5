"""The client's typed wire module is generated from the node's OpenAPI document and must match
the node as it is now; the client package stands alone (no node imports, no node dependencies)."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import msgspec

from vault.app import create_app
from vault.config import Config
from vault_client import codegen, wire

CLIENT = Path(__file__).resolve().parent.parent / "client"


def test_the_committed_wire_module_is_what_the_node_generates_now(config: Config) -> None:
    document = json.loads(create_app(config).openapi_document)
    committed = (CLIENT / "vault_client" / "wire.py").read_text(encoding="utf-8")
    assert codegen.render(document) == committed, (
        "client/vault_client/wire.py is out of date with the node's OpenAPI document: run `make client-wire`"
    )


def test_every_endpoint_in_the_document_has_a_typed_entry(config: Config) -> None:
    document = json.loads(create_app(config).openapi_document)
    listed = {(e.method, e.path) for e in vars(wire).values() if isinstance(e, wire.Endpoint)}
    for path, operations in document["paths"].items():
        if path == "/metrics":
            continue
        for method in operations:
            assert (method.upper(), path) in listed


def test_generated_structs_decode_what_the_node_sends_and_ignore_what_they_do_not_know() -> None:
    raw = {
        "id": "file_1",
        "name": "a.jpg",
        "folder": "/",
        "size": 3,
        "mimeType": "image/jpeg",
        "modifiedAt": "2024-01-20T15:30:00Z",
        "checksum": "blake3:" + "0" * 64,
        "version": 2,
        "addedByANewerNode": True,
    }
    entry = msgspec.json.decode(msgspec.json.encode(raw), type=wire.FileEntry)
    assert entry.mime_type == "image/jpeg" and entry.version == 2
    change = wire.UploadChange(name="a.jpg", size=3, checksum="blake3:" + "0" * 64)
    sent = msgspec.json.decode(msgspec.json.encode(change))
    assert sent == {"action": "upload", "name": "a.jpg", "size": 3, "checksum": "blake3:" + "0" * 64}


def test_the_client_never_imports_the_node() -> None:
    for source in (CLIENT / "vault_client").rglob("*.py"):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"vault", "vault_backends", "vault_plugins"}, (source, name)


def test_the_client_distribution_needs_none_of_the_nodes_dependencies() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = {
        d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower() for d in project["dependencies"]
    }
    assert not wanted & {"lmdb", "quart", "quart-trio", "hypercorn", "argon2-cffi", "prometheus-client"}
    assert project["scripts"]["vault-sync"] == "vault_client.cli:main"
