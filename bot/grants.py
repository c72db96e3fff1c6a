"""What joining a group gives a person: the group's permissions set against the person's effective permissions
(pure: facts in, :class:`Gains` out; no I/O).

Polaris semantics (fact sheet ``shared/polaris/README.md``, "Groups and permissions"; the guide's "List user
permissions"): a permission is a ``name`` with ``resources``; project-scoped ones carry ``["projects/*"]`` (every
project) or ``["projects/<project id>", ...]``; organization-level ones carry none. A user's effective
permissions (``GET /v1/users/{id}/effectivepermissions``) are the union over their groups. So a group's
permission is *already held* when an effective permission of the same name covers each of its resources
(``projects/*`` covers every ``projects/<id>``; an organization-level one covers the name whole); what is not
covered is *gained*, narrowed to the resources not held (held for project A, granted for A and B: B is gained).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from .polaris import Permission

ALL_PROJECTS = "projects/*"


@dataclass(frozen=True)
class Gains:
    """What a group gives one person. ``gained``: the group's permissions they lack (resources narrowed to
    those not held), in the group's order; ``already``: how many of the group's ``total`` permissions they
    hold whole through other groups; ``new_account``: no Polaris user yet (everything is gained);
    ``unread``: why their effective permissions could not be read (then ``gained`` is the whole group and
    nothing is known of what they hold); ``read_at``: when it was read (aware UTC), ``None`` when not read;
    ``labels``: resource -> the words shown for it (a project's name, from ``GET /v1/projects``), for the card
    only (not kept, not compared; a resource without one is shown as its string)."""

    gained: tuple[Permission, ...] = ()
    already: int = 0
    total: int = 0
    new_account: bool = False
    unread: str | None = None
    read_at: dt.datetime | None = field(default=None, compare=False)
    labels: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict:
        """The JSON-able form kept with the request (:meth:`from_json` reads it back)."""
        return {
            "gained": [[p.name, list(p.resources)] for p in self.gained],
            "already": self.already,
            "total": self.total,
            "new_account": self.new_account,
            "read_at": self.read_at.isoformat() if self.read_at else None,
        }

    @classmethod
    def from_json(cls, data: object) -> "Gains | None":
        """:meth:`to_json`'s form back; ``None`` when ``data`` is not one (missing, or written by something else)."""
        if not isinstance(data, dict) or not isinstance(data.get("gained"), list):
            return None
        try:
            gained = tuple(Permission(str(n), tuple(str(r) for r in res or ())) for n, res in data["gained"])
            at = dt.datetime.fromisoformat(data["read_at"]) if data.get("read_at") else None
            return cls(
                gained=gained,
                already=int(data.get("already") or 0),
                total=int(data.get("total") or 0),
                new_account=bool(data.get("new_account")),
                read_at=at,
            )
        except (TypeError, ValueError):
            return None


def _held(effective: Iterable[Permission]) -> dict[str, set[str] | None]:
    """name -> the resources held (``None``: held organization-wide, i.e. an entry without resources)."""
    held: dict[str, set[str] | None] = {}
    for p in effective:
        if not p.resources:
            held[p.name] = None
        elif held.get(p.name, set()) is not None:
            held.setdefault(p.name, set()).update(p.resources)
    return held


def _covered(resource: str, have: set[str]) -> bool:
    return resource in have or (ALL_PROJECTS in have and resource.startswith("projects/"))


def compare(group_permissions: Sequence[Permission], effective: Iterable[Permission] | None) -> Gains:
    """The :class:`Gains` of a group with ``group_permissions`` for a person whose effective permissions are
    ``effective`` (``None``: a new account, so everything is gained). The group's entries are counted as
    they come (one entry, one permission)."""
    total = len(group_permissions)
    if effective is None:
        return Gains(gained=tuple(group_permissions), already=0, total=total, new_account=True)
    held = _held(effective)
    gained: list[Permission] = []
    for p in group_permissions:
        if p.name not in held:
            gained.append(p)
            continue
        have = held[p.name]
        if have is None:
            continue  # held organization-wide
        if not p.resources:
            gained.append(p)  # the group grants it organization-wide; they hold it for some projects only
            continue
        missing = tuple(r for r in p.resources if not _covered(r, have))
        if missing:
            gained.append(Permission(p.name, missing, p.description))
    return Gains(gained=tuple(gained), already=total - len(gained), total=total)


def unread(group_permissions: Sequence[Permission], why: str) -> Gains:
    """The :class:`Gains` when the person's effective permissions could not be read: the whole group, and
    ``why`` (a short reason, no secret)."""
    return Gains(gained=tuple(group_permissions), total=len(group_permissions), unread=why or "error")
