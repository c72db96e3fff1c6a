"""Polaris: the client for the Imply Polaris Identity management API and what it returns.

- :mod:`bot.polaris.client` — :class:`PolarisClient`, the one way the bot reaches Polaris (its contract is
  at the top of that module): timeouts, bounded retries, writes sent once, the key never shown.
- :mod:`bot.polaris.errors` — :class:`PolarisError` and its kinds, parsed from both error envelopes.
- :mod:`bot.polaris.models` — :class:`Permission`, :class:`Group`, :class:`User`, :class:`Page`,
  :class:`PolarisAuditEvent`.
- :mod:`bot.polaris.catalog` — :class:`GroupCatalog`, the cached group list, and :func:`normalize_group_name`.

Every name is re-exported here: ``from bot.polaris import X`` is how the rest of the bot imports them.
"""

from .catalog import MISS_REFRESH_SECONDS, GroupCatalog, PermissionCatalog, ProjectCatalog, normalize_group_name
from .client import PAGE_SIZE, READ_ONLY_GROUP_FIELDS, READ_ONLY_USER_FIELDS, PolarisClient
from .transport import CallHook, PolarisTransport
from .errors import (
    TRANSIENT_STATUSES,
    PolarisAuthError,
    PolarisBadRequest,
    PolarisConflict,
    PolarisError,
    PolarisNotFound,
    PolarisUnavailable,
    PolarisWriteUnknown,
    error_for,
)
from .models import Group, Page, Permission, PolarisAuditEvent, User

__all__ = [
    "CallHook",
    "PolarisTransport",
    "Group",
    "GroupCatalog",
    "PermissionCatalog",
    "ProjectCatalog",
    "READ_ONLY_GROUP_FIELDS",
    "MISS_REFRESH_SECONDS",
    "PAGE_SIZE",
    "Page",
    "Permission",
    "PolarisAuditEvent",
    "PolarisAuthError",
    "PolarisBadRequest",
    "PolarisClient",
    "PolarisConflict",
    "PolarisError",
    "PolarisNotFound",
    "PolarisUnavailable",
    "PolarisWriteUnknown",
    "READ_ONLY_USER_FIELDS",
    "TRANSIENT_STATUSES",
    "User",
    "error_for",
    "normalize_group_name",
]
