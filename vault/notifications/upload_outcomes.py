"""The ``uploads`` notification: recorded in the same transaction that finishes (or fails) an upload."""

from __future__ import annotations

from vault.devices.records import DEVICES, user_devices_prefix
from vault.files.records import FileRecord
from vault.meta import Txn
from vault.notifications.records import record_notification
from vault.uploads.records import UploadOutcome


def record_upload_outcome(
    txn: Txn, upload: UploadOutcome, record: FileRecord | None, error: str | None, now: float
) -> None:
    """ "Photo upload completed" (or failed) for every device of the uploader (``uploadId`` in
    its data when the upload had a session: a one-request upload has none)."""
    device_ids = [device.id for _, device in txn.scan(DEVICES, user_devices_prefix(upload.user_id))]
    session = {"uploadId": upload.upload_id} if upload.upload_id is not None else {}
    if record is not None:
        title = "Upload completed"
        body = f"{record.name} was uploaded to {record.folder}"
        data = {"fileId": record.id, **session, "name": record.name, "folder": record.folder}
    else:
        title = "Upload failed"
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
