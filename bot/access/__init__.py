"""The access core (replaces the former ``bot/workflow.py``): :class:`AccessService` is its facade; the units
behind it are listed in :mod:`bot.access.service`."""

from .authority import barred_reason
from .reply import Reply
from .service import AccessService

__all__ = ["AccessService", "Reply", "barred_reason"]
