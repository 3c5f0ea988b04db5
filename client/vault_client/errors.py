"""What can go wrong talking to a node, as exceptions that carry the node's own error code.

Every failure the node reports arrives as ``{"success": false, "error": {"code", ...}}``; the
client raises ``NodeError`` (or the subclass for its code) with that code, the HTTP status, the
request id and ``details``. Failures that never reached an answer (connection refused, reset,
timed out after every retry) are ``NodeUnreachable``.
"""

from __future__ import annotations

from typing import Any


class VaultClientError(Exception):
    """Base of every error this package raises."""


class NodeUnreachable(VaultClientError):
    """No answer from the node (after the retries the policy allows)."""


class NotLoggedIn(VaultClientError):
    """No credentials in the state, or the node no longer accepts them: sign in again."""


class VerificationFailed(VaultClientError):
    """Downloaded bytes do not match the checksum the node gave for them."""


class NetworkNotAllowed(VaultClientError):
    """The transfer policy (``wifi_only``) refuses the network the node is reached through."""


class NodeError(VaultClientError):
    """The node answered with its error envelope."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int,
        request_id: str = "",
        details: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}" + (f" (request {request_id})" if request_id else ""))
        self.code = code
        self.message = message
        self.status = status
        self.request_id = request_id
        self.details = details or {}
        self.retry_after = retry_after


class AuthError(NodeError):
    """``UNAUTHORIZED``, ``TOKEN_EXPIRED``, ``TOKEN_REUSED``, ``DEVICE_REVOKED``, ``INVALID_CREDENTIALS``."""


class NotFound(NodeError):
    pass


class Conflict(NodeError):
    pass


class QuotaExceeded(NodeError):
    """``STORAGE_QUOTA_EXCEEDED`` (the plan) or ``INSUFFICIENT_STORAGE`` (the node's own disk)."""


class UploadExpired(NodeError):
    pass


class ChecksumMismatch(NodeError):
    pass


_BY_CODE: dict[str, type[NodeError]] = {
    "UNAUTHORIZED": AuthError,
    "TOKEN_EXPIRED": AuthError,
    "TOKEN_REUSED": AuthError,
    "DEVICE_REVOKED": AuthError,
    "INVALID_CREDENTIALS": AuthError,
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "STORAGE_QUOTA_EXCEEDED": QuotaExceeded,
    "INSUFFICIENT_STORAGE": QuotaExceeded,
    "UPLOAD_EXPIRED": UploadExpired,
    "CHECKSUM_MISMATCH": ChecksumMismatch,
}


def node_error(
    code: str,
    message: str,
    *,
    status: int,
    request_id: str = "",
    details: dict[str, Any] | None = None,
    retry_after: float | None = None,
) -> NodeError:
    kind = _BY_CODE.get(code, NodeError)
    return kind(code, message, status=status, request_id=request_id, details=details, retry_after=retry_after)
