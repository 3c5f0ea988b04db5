"""Schemathesis against a live node: every operation of the node's own OpenAPI document."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.config._checks import (
    MISSING_REQUIRED_HEADER_EXPECTED_STATUSES,
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
)
from schemathesis.specs.openapi import stateful as stateful_openapi
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.auth_support import register_body
from tests.process_node import free_port, serve
from vault.app import create_app
from vault.config import config_from_mapping

pytestmark = pytest.mark.reliability

SEED = 20240612
MAX_EXAMPLES = 25
# The stateful phase: this many call sequences of up to this many steps.
STATEFUL_EXAMPLES = 40
STATEFUL_STEPS = 8
PENDING = "pending-until-the-node-runs"


def _node_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:  # create_app writes nothing until it serves
        app = create_app(config_from_mapping({"storage": {"data_dir": str(Path(scratch) / "data")}}))
    document: dict[str, Any] = json.loads(app.openapi_document)
    return document


DOCUMENT = _node_document()
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        # The coverage phase (boundary values of every keyword) builds its cases while pytest
        # collects, and with the name and folder patterns that took 100 s of CPU: over budget.
        # Its findings have regression tests; examples and fuzzing run, derandomized.
        "phases": {"coverage": {"enabled": False}},
        "checks": {
            # tus 1.0 answers a missing or wrong Tus-Resumable with 412 (documented on each tus
            # operation), and an Upload-Length beyond Tus-Max-Size with 413.
            "negative_data_rejection": {
                "expected-statuses": [*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "412", "413"]
            },
            "missing_required_header": {"expected-statuses": [*MISSING_REQUIRED_HEADER_EXPECTED_STATUSES, "412"]},
        },
    }
)
# A copy: the stateful phase adds the links it infers to the document it was given.
schema = schemathesis.openapi.from_dict(copy.deepcopy(DOCUMENT), config=CONFIG)
# tus PATCH bodies are raw bytes like chunk PUTs, under tus's own media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")


class Tokens:
    """One signed-in device's access token, renewed when the node stops taking it."""

    def __init__(self) -> None:
        self.base: str | None = None
        self.current: str | None = None
        self.issued: set[str] = {PENDING}
        self.sign_ins = 0

    def token(self) -> str:
        if self.base is None:  # collection: schemathesis builds its coverage cases before any fixture runs
            return PENDING
        if self.current is None:
            body = register_body("fuzz@example.com", device_id=f"fuzz-{uuid.uuid4().hex[:12]}")
            answer = httpx.post(f"{self.base}/api/mobile/auth/register", json=body, timeout=30)
            answer.raise_for_status()
            self.current = str(answer.json()["tokens"]["accessToken"])
            self.issued.add(self.current)
            self.sign_ins += 1
        return self.current

    def ours(self, case: Any) -> bool:
        header = str((case.headers or {}).get("Authorization", ""))
        return header.removeprefix("Bearer ") in self.issued

    def apply(self, case: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {self.token()}"}


TOKENS = Tokens()


@schema.auth(refresh_interval=None)
class Bearer:
    def get(self, case: Any, ctx: Any) -> str:
        return TOKENS.token()

    def set(self, case: Any, data: str, ctx: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


# Why a schema-valid request may still be refused (400 VALIDATION_ERROR): what no JSON schema can
# say. Matched on the error's ``details.field`` or message; anything else is a finding.
SCHEMA_CANNOT_SAY = [
    (None, "syncToken", "an opaque token: only one this node gave this account is valid"),
    (None, "cursor", "an opaque cursor: only a nextCursor this node gave out is valid"),
    (None, "timezone", "an IANA time zone name: tzdata's list of names, not a pattern"),
    (None, "UTF-8 bytes", "names are limited in UTF-8 bytes; maxLength counts characters"),
    (None, "is too long", "folders are limited in UTF-8 bytes; maxLength counts characters"),
    # The values are base64: what they decode to (UTF-8, a valid name, folder, media type) is
    # beyond a pattern.
    ("POST /api/mobile/tus/", "Upload-Metadata", "base64 of UTF-8 text"),
    ("POST /api/mobile/tus/", "filename", "base64 of a file name"),
    ("POST /api/mobile/tus/", "folder", "base64 of a folder"),
    ("POST /api/mobile/tus/", "filetype", "base64 of a media type"),
    # The checksum names the body's content: a random body and a random digest disagree.
    ("POST /api/mobile/upload/file", "does not match the file checksum", "the body's BLAKE3/SHA-256 digest"),
]
# msgspec's words for 5.0 sent for an integer: JSON Schema counts it as one, the node wants integers
# written as integers (it decodes strictly).
INTEGRAL_FLOAT = re.compile(r"Expected `int[^`]*`, got `float`")
# Operations that answer 200 with a result per item, a refused item among them (by design: one bad
# change must not fail the batch), so schema-violating items are not refused with a 4xx.
PER_ITEM_RESULTS = {"POST /api/mobile/sync/files", "POST /api/mobile/queue/add"}


def _schema_cannot_say(case: Any, response: Any) -> str | None:
    if response.status_code not in (400, 422):
        return None
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    said = f"{(error.get('details') or {}).get('field', '')} {error.get('message', '')}"
    if INTEGRAL_FLOAT.search(said):
        return "5.0 for an integer"
    return next(
        (
            reason
            for label, fragment, reason in SCHEMA_CANNOT_SAY
            if label in (None, case.operation.label) and fragment in said
        ),
        None,
    )


def _wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "node exited during startup"
        try:
            if httpx.get(f"{base}/api/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("node did not become healthy")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schemathesis")
    config = root / "vault.toml"
    # Unlimited devices and quota: the token provider signs a new device in after each fuzzed logout,
    # and the sign-in limiter would soon refuse it (every fuzzed register with a wrong password counts
    # against 127.0.0.1); both limits have tests of their own.
    config.write_text('[plans]\ndefault = "enterprise"\n[auth]\nmax_failed_logins_per_minute = 1000000\n')
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(config, root / "data", port)
    try:
        _wait_healthy(base, proc)
        served = httpx.get(f"{base}/api/mobile/openapi.json", timeout=30)
        assert served.json() == DOCUMENT, "the live node serves another OpenAPI document than the one under test"
        TOKENS.base = base
        yield base
    finally:
        TOKENS.base = None
        proc.terminate()
        proc.wait(timeout=30)


def _call(case: Any, base: str) -> Any:
    """``case`` sent to the node with our token (when it carries one of ours: a fuzzed or missing
    header is sent as generated), signing in again once if a fuzzed logout revoked it."""
    ours = TOKENS.ours(case)
    if ours:
        TOKENS.apply(case)
    response = case.call(base_url=base)
    if ours and response.status_code == 401:  # a fuzzed logout revoked the token: sign in again, once
        TOKENS.current = None
        TOKENS.apply(case)
        response = case.call(base_url=base)
    return response


def _validate(case: Any, response: Any, base: str) -> None:
    """Every schemathesis check, but for what a schema cannot say (``SCHEMA_CANNOT_SAY``) and the
    per-item answers of batch operations."""
    excluded = []
    if _schema_cannot_say(case, response) is not None:
        excluded.append(positive_data_acceptance)
    if case.operation.label in PER_ITEM_RESULTS:
        excluded.append(negative_data_rejection)
    case.validate_response(response, excluded_checks=excluded, transport_kwargs={"base_url": base})


@schema.parametrize()
def test_every_operation(case: Any, node: str) -> None:
    _validate(case, _call(case, node), node)


def _with_every_root() -> type:
    """The state machine, with every operation that starts a chain as an entry point. Schemathesis
    takes ``localId`` (upload/init) and ``fileId`` (shares) for references to resources nothing
    produces and so would start only from the two lists; every chain worth walking (an upload
    planned, read, sent, aborted) starts at one of those POSTs."""
    classify = stateful_openapi.classify_root_transitions

    def every_root(*args: Any) -> Any:
        roots = classify(*args)
        roots.reliable |= roots.fallback
        return roots

    stateful_openapi.classify_root_transitions = every_root
    try:
        return schema.as_state_machine()
    finally:
        stateful_openapi.classify_root_transitions = classify


class NodeWorkflow(_with_every_root()):  # type: ignore[misc]
    """Sequences of calls chained by the links schemathesis infers from the document (an upload
    planned, then its state read, its chunks sent, aborted; a device listed, then renamed and
    removed; a share made, then revoked ...), each answer checked as above."""

    base = ""

    def call(self, case: Any, **kwargs: Any) -> Any:
        return _call(case, self.base)

    def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
        _validate(case, response, self.base)


def test_call_sequences(node: str) -> None:
    NodeWorkflow.base = node
    NodeWorkflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
