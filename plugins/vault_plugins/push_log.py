"""The ``log`` push provider (the default, for development): writes each message to the node's log."""

from __future__ import annotations

import logging

from vault.plugin_api import Delivered, Outcome, PushMessage, PushProvider, PushRegistration

log = logging.getLogger("vault.push.log")


class LogProvider(PushProvider):
    """Logs what would be sent; the push token itself is never written (it is a secret)."""

    async def send(self, registration: PushRegistration, message: PushMessage) -> Outcome:
        log.info(
            "push %s to device %s (%s): %s",
            message.category,
            registration.device_id,
            registration.platform,
            message.title,
            extra={"device_id": registration.device_id},
        )
        return Delivered()
