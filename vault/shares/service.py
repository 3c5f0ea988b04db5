"""Sharing a file read-only with another user of the node, listing and revoking shares.

The share, the file's appearance in the recipient's sync and the recipient's ``shares``
notification are written in one transaction (``ChangeTxn.share``). Users are found through
functions the node hands in (the accounts are ``vault.auth``'s), so this package sees no more of
them than an id, an email and a name.
"""

from __future__ import annotations

from collections.abc import Callable

from vault import errors
from vault.clock import Clock, rfc3339
from vault.devices.records import DEVICES, user_devices_prefix
from vault.files import shares
from vault.files.changes import ChangeTxn, FileChanges
from vault.files.records import FILES
from vault.ids import new_id
from vault.meta import MetaStore, Txn
from vault.notifications.records import record_notification
from vault.shares.wire import ShareAnswer, ShareList, ShareRequest, ShareRevoked, ShareView

# (id, email, name) of a user, looked up inside a transaction.
UserInfo = tuple[str, str, str]
FindByEmail = Callable[[Txn, str], UserInfo | None]
FindById = Callable[[Txn, str], UserInfo | None]


class ShareService:
    def __init__(
        self,
        meta: MetaStore,
        changes: FileChanges,
        clock: Clock,
        *,
        by_email: FindByEmail,
        by_id: FindById,
        normalise_email: Callable[[str], str],
    ) -> None:
        self.meta = meta
        self.changes = changes
        self.clock = clock
        self._by_email = by_email
        self._by_id = by_id
        self._normalise = normalise_email

    async def create(self, owner_id: str, body: ShareRequest) -> ShareAnswer:
        email = self._normalise(body.email)
        now = self.clock.now()

        def write(ctx: ChangeTxn) -> ShareView:
            txn = ctx.txn
            owner = self._by_id(txn, owner_id)
            recipient = self._by_email(txn, email)
            record = txn.get(FILES, body.file_id.encode())
            if owner is None or record is None or record.user_id != owner_id or record.deleted_at is not None:
                raise errors.NotFound("No such file")
            if recipient is None:
                raise errors.NotFound("No user with that email on this node", details={"field": "email"})
            if recipient[0] == owner_id:
                raise errors.ValidationError("You cannot share a file with yourself", details={"field": "email"})
            existing = shares.share_for(txn, record.id, recipient[0])
            if existing is not None:
                return self._view(txn, existing)  # sharing twice is the same share
            share = shares.Share(
                id=new_id("share"), file_id=record.id, owner_id=owner_id, recipient_id=recipient[0], created_at=now
            )
            ctx.share(share)
            sharer = owner[2].split()[0] if owner[2].split() else owner[1]
            record_notification(
                txn,
                user_id=recipient[0],
                category="shares",
                title=f"{sharer} shared a file with you",
                body=record.name,
                now=now,
                device_ids=[d.id for _, d in txn.scan(DEVICES, user_devices_prefix(recipient[0]))],
                data={"fileId": record.id, "shareId": share.id, "name": record.name, "owner": owner[1]},
            )
            return self._view(txn, share)

        return ShareAnswer(share=await self.changes.write(write, now=now))

    async def listing(self, user_id: str) -> ShareList:
        async with self.meta.snapshot() as txn:
            found = shares.user_shares(txn, user_id)
            views = [self._view(txn, s) for s in sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)]
        return ShareList(shares=views)

    async def revoke(self, user_id: str, share_id: str) -> ShareRevoked:
        """The owner revokes, or the recipient leaves; for anyone else the share does not exist."""

        def write(ctx: ChangeTxn) -> None:
            share = shares.get_share(ctx.txn, share_id)
            if share is None or user_id not in (share.owner_id, share.recipient_id):
                raise errors.NotFound("No such share")
            ctx.unshare(share)

        await self.changes.write(write, now=self.clock.now())
        return ShareRevoked(revoked=share_id)

    def _view(self, txn: Txn, share: shares.Share) -> ShareView:
        owner = self._by_id(txn, share.owner_id)
        recipient = self._by_id(txn, share.recipient_id)
        record = txn.get(FILES, share.file_id.encode())
        return ShareView(
            id=share.id,
            file_id=share.file_id,
            owner=owner[1] if owner else "",
            recipient=recipient[1] if recipient else "",
            created_at=rfc3339(share.created_at),
            name=record.name if record is not None and record.deleted_at is None else None,
        )
