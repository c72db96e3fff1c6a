"""Typed results of the Polaris Identity API (schemas of ``openapi-identity.json``): :class:`Permission`,
:class:`Group`, :class:`User` (with ``raw``, the whole object, so an update carries over every property),
:class:`Page` of a paged list and :class:`PolarisAuditEvent`. Immutable; ``parse`` reads Polaris's JSON
defensively (missing or null fields get defaults)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Permission:
    """A permission: ``name``; ``resources`` (e.g. ``("projects/*",)``) for project-scoped ones, empty for
    organization-level ones such as ``AdministerUsers``."""

    name: str
    resources: tuple[str, ...] = ()
    description: str = ""

    @classmethod
    def parse(cls, data: dict) -> "Permission":
        return cls(
            name=str(data.get("name", "")),
            resources=tuple(data.get("resources") or ()),
            description=str(data.get("description") or ""),
        )


@dataclass(frozen=True)
class Group:
    """A Polaris group (``GroupRepresentation``): ``id``, ``name``, ``read_only`` (predefined groups),
    ``permissions``, ``user_count``."""

    id: str
    name: str
    read_only: bool = False
    permissions: tuple[Permission, ...] = ()
    user_count: int | None = None

    @classmethod
    def parse(cls, data: dict) -> "Group":
        return cls(
            id=str(data.get("id", "")),
            name=str(data.get("name", "")),
            read_only=bool(data.get("readOnly", False)),
            permissions=tuple(Permission.parse(p) for p in data.get("permissions") or ()),
            user_count=data.get("userCount"),
        )


@dataclass(frozen=True)
class User:
    """A Polaris user (``UserRepresentation``). ``raw`` is the whole object as Polaris sent it, kept so an
    update can carry over every property, including ones this client does not model."""

    id: str
    username: str
    email: str
    first_name: str = ""
    last_name: str = ""
    enabled: bool = True
    groups: tuple[tuple[str, str], ...] = ()  # (id, name)
    actions: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def group_ids(self) -> set[str]:
        return {gid for gid, _ in self.groups}

    @property
    def display_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.username

    @classmethod
    def parse(cls, data: dict) -> "User":
        return cls(
            id=str(data.get("id", "")),
            username=str(data.get("username", "")),
            email=str(data.get("email") or data.get("username") or ""),
            first_name=str(data.get("firstName") or ""),
            last_name=str(data.get("lastName") or ""),
            enabled=bool(data.get("enabled", True)),
            groups=tuple((str(g.get("id", "")), str(g.get("name") or "")) for g in data.get("groups") or ()),
            actions=tuple(data.get("actions") or ()),
            raw=copy.deepcopy(data),
        )


@dataclass(frozen=True)
class Page:
    """One page of a paged list: ``values`` and ``count`` (the total over all pages)."""

    values: list
    count: int


@dataclass(frozen=True)
class PolarisAuditEvent:
    """One of Polaris's own audit events (fact sheet, "Polaris's own audit events"): ``time`` (ISO 8601 as
    sent), ``type`` (e.g. ``USER_PASSWORD_RESET``), ``category`` (``AUTH``/``ADMIN``), ``resource``,
    ``actor_type``, ``actor_id``, ``summary``; ``raw`` is the whole object."""

    time: str
    type: str
    category: str = ""
    resource: str = ""
    actor_type: str = ""
    actor_id: str = ""
    summary: str = ""
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, data: dict) -> "PolarisAuditEvent":
        return cls(
            time=str(data.get("time") or ""),
            type=str(data.get("type") or ""),
            category=str(data.get("category") or ""),
            resource=str(data.get("resource") or ""),
            actor_type=str(data.get("actorType") or ""),
            actor_id=str(data.get("actorId") or ""),
            summary=str(data.get("summary") or ""),
            raw=copy.deepcopy(data),
        )

    def concerns(self, user_id: str) -> bool:
        """Whether the event is about ``user_id`` (its resource, context or summary names it)."""
        return bool(user_id) and (
            user_id in self.resource or user_id in str(self.raw.get("context") or "") or user_id in self.summary
        )
