"""The shipped conformance suite, every check, against a real S3 server (Ceph RGW in CI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.s3_support import needs_s3, s3_harness, s3_prefix
from vault.chunks import conformance
from vault.chunks.conformance import CHECKS, NotApplicable

pytestmark = needs_s3
__all__ = ["s3_prefix"]  # the fixture, used by name


@pytest.mark.parametrize("check", CHECKS, ids=conformance.check_name)
async def test_conformance_against_the_gateway(check: conformance.Check, tmp_path: Path, s3_prefix: str) -> None:
    try:
        await check(s3_harness(tmp_path / "chunks", s3_prefix))
    except NotApplicable as exc:  # pragma: no cover - the S3 harness has every hook
        pytest.fail(f"the S3 harness should have every hook: {exc}")
