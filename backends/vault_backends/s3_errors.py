"""What an S3 answer means for the node: transient (retry), permanent (say what to fix), or absent.

botocore raises ``ClientError`` for an error answer and its own connection errors for everything
below HTTP; the backend turns each into ``StorageUnavailable`` (an ``OSError``, which
``RetryingBackend`` retries and the API answers with 503), ``StorageRefused`` (permanent: one
line saying what to fix) or ``KeyError`` (the object is absent). Messages are built here from
the error code and HTTP status only, never from a request, so no credential can end up in one.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from vault.plugin_api import StorageRefused, StorageUnavailable

# Error codes that mean "not now": S3's and the compatible stores' throttling and overload answers.
TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequests",
        "RequestTimeout",
        "RequestTimeTooSkewed",  # a clock step on either side; the next attempt signs anew
        "ServiceUnavailable",
        "InternalError",
        "OperationAborted",  # a conflicting operation on the bucket in progress
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
BAD_CREDENTIAL_CODES = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"})
CREDENTIALS_HINT = "check storage.s3.access_key and secret_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"


@dataclass(frozen=True)
class Where:
    """Where requests go, for messages: the endpoint and ``s3://bucket/prefix``."""

    endpoint: str
    bucket: str
    prefix: str

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def code_of(exc: ClientError) -> tuple[str, int]:
    """The S3 error code and the HTTP status of an error answer."""
    error = exc.response.get("Error", {})
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return str(error.get("Code", "") or status), status


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and code_of(exc)[0] in NOT_FOUND_CODES


def translate(exc: BaseException, what: str, where: Where) -> BaseException:
    """The node's exception for a botocore one raised while doing ``what`` (``"upload a chunk"``)."""
    if isinstance(exc, ClientError):
        code, status = code_of(exc)
        if code in NOT_FOUND_CODES:
            return KeyError(what)
        if status >= 500 or status == 429 or code in TRANSIENT_CODES:
            return StorageUnavailable(f"S3 at {where.endpoint} could not {what}: {code} (HTTP {status}); retrying")
        if code == "NoSuchBucket":
            return StorageRefused(
                f"S3 bucket {where.bucket!r} does not exist at {where.endpoint}: create it, "
                "or set storage.s3.create_bucket = true with credentials allowed to create it"
            )
        if code in BAD_CREDENTIAL_CODES:
            return StorageRefused(f"S3 at {where.endpoint} refused the credentials ({code}): {CREDENTIALS_HINT}")
        if code in {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem"}:
            return StorageRefused(
                f"S3 credentials have no permission to {what} in {where.location} ({code}): "
                "grant them list, read, write and delete on the bucket"
            )
        if code == "PermanentRedirect" or status in (301, 307):
            return StorageRefused(
                f"S3 bucket {where.bucket!r} is in another region or needs virtual-host addressing ({code}): "
                "check storage.s3.region and addressing"
            )
        return StorageRefused(f"S3 at {where.endpoint} refused to {what}: {code} (HTTP {status})")
    if isinstance(exc, NoCredentialsError):
        return StorageRefused(f"no S3 credentials: {CREDENTIALS_HINT}")
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        # Connection refused or reset, DNS, timeouts, a body cut short: everything below an answer.
        return StorageUnavailable(f"cannot reach S3 at {where.endpoint} to {what}: {type(exc).__name__}")
    if isinstance(exc, BotoCoreError):
        return StorageRefused(f"S3 client cannot {what}: {type(exc).__name__} (check storage.s3 options)")
    return exc
