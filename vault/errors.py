"""The node's exception tree, mapped to the API's error envelope in one place.

::

    VaultError                      code, HTTP status, message, details
    ├── ValidationError             VALIDATION_ERROR       400
    │   └── BodyStalled             VALIDATION_ERROR       400  (a request body stopped arriving)
    ├── InvalidCredentials          INVALID_CREDENTIALS    401
    ├── Unauthorized                UNAUTHORIZED           401
    ├── TokenExpired                TOKEN_EXPIRED          401
    ├── TokenReused                 TOKEN_REUSED           401
    ├── DeviceRevoked               DEVICE_REVOKED         401
    ├── SignupDisabled              SIGNUP_DISABLED        403
    ├── DeviceLimitReached          DEVICE_LIMIT_REACHED   403
    ├── NotFound                    NOT_FOUND              404
    ├── MethodNotAllowed            METHOD_NOT_ALLOWED     405
    ├── Conflict                    CONFLICT               409
    ├── UploadExpired               UPLOAD_EXPIRED         410
    ├── PayloadTooLarge             PAYLOAD_TOO_LARGE      413
    ├── UnsupportedMediaType        UNSUPPORTED_MEDIA_TYPE 415
    ├── RangeNotSatisfiable         RANGE_NOT_SATISFIABLE  416
    ├── ChecksumMismatch            CHECKSUM_MISMATCH      422
    ├── RateLimitExceeded           RATE_LIMIT_EXCEEDED    429  (Retry-After)
    ├── ServiceUnavailable          SERVICE_UNAVAILABLE    503
    │   └── ContentReclaimed        SERVICE_UNAVAILABLE    503  (Retry-After; gc took a piece: send it again)
    ├── StorageQuotaExceeded        STORAGE_QUOTA_EXCEEDED 507
    ├── InsufficientStorage         INSUFFICIENT_STORAGE   507  (the node's disk is full, not the plan)
    └── InternalError               INTERNAL_ERROR         500

Services raise these; ``vault.api.error_mapping`` turns them (and anything else) into responses, once,
for the Quart routes, the raw streaming routes and tus alike. Lower-layer errors (LMDB,
OS, msgspec) are translated at the boundary where they occur, never leaked to clients.
"""

from __future__ import annotations

from typing import Any, ClassVar


class VaultError(Exception):
    """An error a client may see: carries the API code, HTTP status and optional details."""

    code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    default_message: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)


class ValidationError(VaultError):
    code, status, default_message = "VALIDATION_ERROR", 400, "Invalid request"


class BodyStalled(ValidationError):
    """A request body stopped arriving (or arrived too slowly) before it was complete."""

    default_message = "Request body was not received in time"


class InvalidCredentials(VaultError):
    code, status, default_message = "INVALID_CREDENTIALS", 401, "Wrong email or password"


class Unauthorized(VaultError):
    code, status, default_message = "UNAUTHORIZED", 401, "Missing or invalid bearer token"


class TokenExpired(VaultError):
    code, status, default_message = "TOKEN_EXPIRED", 401, "Token has expired"


class TokenReused(VaultError):
    code, status, default_message = "TOKEN_REUSED", 401, "Refresh token was already used"


class DeviceRevoked(VaultError):
    code, status, default_message = "DEVICE_REVOKED", 401, "This device was removed or logged out"


class SignupDisabled(VaultError):
    code, status, default_message = "SIGNUP_DISABLED", 403, "Sign-up is closed on this node"


class DeviceLimitReached(VaultError):
    code, status, default_message = "DEVICE_LIMIT_REACHED", 403, "Device limit of the plan reached"


class NotFound(VaultError):
    code, status, default_message = "NOT_FOUND", 404, "Not found"


class MethodNotAllowed(VaultError):
    code, status, default_message = "METHOD_NOT_ALLOWED", 405, "Method not allowed"


class Conflict(VaultError):
    code, status, default_message = "CONFLICT", 409, "Request conflicts with current state"


class UploadExpired(VaultError):
    code, status, default_message = "UPLOAD_EXPIRED", 410, "Upload session has expired"


class PayloadTooLarge(VaultError):
    code, status, default_message = "PAYLOAD_TOO_LARGE", 413, "Request body too large"


class UnsupportedMediaType(VaultError):
    code, status, default_message = "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported content type"


class RangeNotSatisfiable(VaultError):
    code, status, default_message = "RANGE_NOT_SATISFIABLE", 416, "Range not satisfiable"


class ChecksumMismatch(VaultError):
    code, status, default_message = "CHECKSUM_MISMATCH", 422, "Content does not match its checksum"


class RateLimitExceeded(VaultError):
    code, status, default_message = "RATE_LIMIT_EXCEEDED", 429, "Too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class ServiceUnavailable(VaultError):
    code, status, default_message = "SERVICE_UNAVAILABLE", 503, "Service unavailable"


class ContentReclaimed(ServiceUnavailable):
    """Garbage collection removed content an upload was just taking a reference on; the client
    sends that piece again (the upload itself is intact)."""

    default_message = "The node was reclaiming this content at the same moment; send it again"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


class StorageQuotaExceeded(VaultError):
    code, status, default_message = "STORAGE_QUOTA_EXCEEDED", 507, "Storage quota exceeded"


class InsufficientStorage(VaultError):
    """The node's storage is full (a disk, not the plan's quota): nothing was stored; reads go
    on working and writes succeed again once space is freed."""

    code, status = "INSUFFICIENT_STORAGE", 507
    default_message = "The node's storage is full; try again later"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"Retry-After": "60"})


class InternalError(VaultError):
    code, status, default_message = "INTERNAL_ERROR", 500, "Internal error"
