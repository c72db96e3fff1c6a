"""Which Polaris groups are privileged: the one list the approval rule, the card and the policy text use.

A group is *privileged* when it is Organization Admin, or when it grants any organization-level
administration permission. Whoever holds one of these administers the whole organization (its users and
groups, API keys, OAuth clients, projects, billing, customizations), and with ``AdministerUsers`` can give
themselves every other permission. A request for a privileged group needs at least two approvals, each by
a member of Organization Admin in Polaris, and is never auto-approved.

Source: the permission catalogue of the public guide "Manage users and groups through API"
(``identity-management-guide.txt``, "List all permissions", mirrored by ``standins.polaris_sandbox.PERMISSION_CATALOGUE``):
the organization-level permissions are the ones listed without ``resources``. Of those, the ``Administer…``
ones are here. A permission Polaris adds later whose name starts with ``Administer`` and that carries no
``resources`` counts as privileged as well, so a new one is not missed.

``ManageApiKeys`` (decided, issue 11): **not privileged**. It is organization-level, so the approval card
flags it as such (:mod:`bot.views.gains`), but it is not an administration permission: the guide's catalogue
lists it apart from ``AdministerApiKeys`` (which governs the organization's API keys and is privileged), and
the predefined Data Manager group, an everyday data role, grants it. Read as managing API keys for the work a
person already may do, it gives no power over other users, groups, clients, projects or billing; making it
privileged would put every Data Manager request behind two Organization Admins for no administration gained.
An organization that sees it otherwise asks more approvals in its policy file
(``[groups."Data Manager"] approvals = 2``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .polaris import Group, Permission

ORG_ADMIN = "Organization Admin"

#: Organization-level administration permissions (the guide's catalogue, entries without ``resources``).
ORG_ADMIN_PERMISSIONS: frozenset[str] = frozenset(
    {
        "AdministerUsers",
        "AdministerApiKeys",
        "AdministerClients",
        "AdministerProjects",
        "AdministerBilling",
        "AdministerCustomizations",
    }
)

#: The least number of approvals a privileged group needs, whatever the policy file says.
PRIVILEGED_APPROVALS = 2


def privileged_grants(group: "Group | None") -> list[str]:
    """The names of ``group``'s permissions that make it privileged, in the group's order (``[]`` when
    none; Organization Admin itself is privileged even with none, see :func:`is_privileged`)."""
    if group is None:
        return []
    out: list[str] = []
    for p in group.permissions:
        if is_privileged_permission(p) and p.name not in out:
            out.append(p.name)
    return out


def is_privileged_permission(permission: "Permission") -> bool:
    """True for an organization-level administration permission: one of :data:`ORG_ADMIN_PERMISSIONS`, or any
    ``Administer…`` permission without ``resources``."""
    org_level = not permission.resources
    return permission.name in ORG_ADMIN_PERMISSIONS or (org_level and permission.name.startswith("Administer"))


def is_privileged(group: "Group | None") -> bool:
    """True for Organization Admin (by name, ignoring case) and for any group with a privileged grant."""
    if group is None:
        return False
    return group.name.strip().lower() == ORG_ADMIN.lower() or bool(privileged_grants(group))


def approvals_needed(policy_approvals: int, group: "Group | None") -> int:
    """Distinct approvals a request for ``group`` needs: the policy's number, and at least
    :data:`PRIVILEGED_APPROVALS` for a privileged group."""
    return max(policy_approvals, PRIVILEGED_APPROVALS) if is_privileged(group) else policy_approvals


def describe() -> str:
    """One sentence for the policy text: what makes a group privileged and what it then needs."""
    names = ", ".join(sorted(ORG_ADMIN_PERMISSIONS))
    return (
        f"*{ORG_ADMIN}*, and any group granting an organization-level administration permission ({names}), "
        f"needs {PRIVILEGED_APPROVALS} approvals by approvers who are {ORG_ADMIN} members in Polaris; "
        "it is read from Polaris at each decision and again before it is applied."
    )
