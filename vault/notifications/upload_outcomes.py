"""The ``uploads`` notification: recorded in the same transaction that finishes (or fails) an upload."""

from __future__ import annotations

import mimetypes

from vault.devices.records import DEVICES, user_devices_prefix
from vault.files.paths import DEFAULT_MIME
from vault.files.records import FileRecord
from vault.meta import Txn
from vault.notifications.records import record_notification
from vault.uploads.records import UploadOutcome


def kind_of(name: str, mime_type: str | None = None) -> str:
    """The word the spec's texts use for a file ("Photo upload completed"): phones upload
    mostly photos and videos, and a user reads which one finished. A type the client did not
    declare (or a failed upload, which made no record) is guessed from the name."""
    if not mime_type or mime_type == DEFAULT_MIME:
        mime_type = mimetypes.guess_type(name)[0]
    top = (mime_type or "").split("/", 1)[0]
    return {"image": "Photo", "video": "Video", "audio": "Audio"}.get(top, "File")


def record_upload_outcome(
    txn: Txn, upload: UploadOutcome, record: FileRecord | None, error: str | None, now: float
) -> None:
    """ "Photo upload completed" (or failed) for every device of the uploader (``uploadId`` in
    its data when the upload had a session: a one-request upload has none)."""
    device_ids = [device.id for _, device in txn.scan(DEVICES, user_devices_prefix(upload.user_id))]
    session = {"uploadId": upload.upload_id} if upload.upload_id is not None else {}
    if record is not None:
        title = f"{kind_of(record.name, record.mime_type)} upload completed"
        body = f"{record.name} was uploaded to {record.folder}"
        data = {"fileId": record.id, **session, "name": record.name, "folder": record.folder}
    else:
        title = f"{kind_of(upload.name)} upload failed"
        body = f"{upload.name} could not be stored: {error or 'unknown error'}"
        data = {**session, "name": upload.name, "folder": upload.folder, "reason": error or ""}
    record_notification(
        txn,
        user_id=upload.user_id,
        category="uploads",
        title=title,
        body=body,
        now=now,
        device_ids=device_ids,
        data=data,
    )
