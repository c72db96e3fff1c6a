"""The answer to a request just saved: its approval card posted, and the requester told where it went."""

from __future__ import annotations

from .. import views
from ..models import AccessRequest
from .notifications import Notifications
from .reply import Reply, asked


def card_reply(notifications: Notifications, req: AccessRequest, *, deciders: str = "approvers") -> Reply:
    """Post the card of ``req`` (just saved) and answer its requester (:func:`bot.access.reply.asked`: to
    ``deciders``, a plural noun such as "approvers" or "admins"); when the card cannot be posted yet, they are
    also told by DM (:meth:`Notifications.tell_unposted`). Never raises for a Slack failure (the ledger keeps
    it)."""
    posted = notifications.post_card(req.id)
    if not posted:
        notifications.tell_unposted(req.id)
    channel = notifications.ctx.settings.approval_channel
    return asked(views.kind_phrase(req), req.id, channel, posted=posted, deciders=deciders)
