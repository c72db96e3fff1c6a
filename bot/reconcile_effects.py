"""What an applied access request left in Polaris, as the bot believes it (read by :mod:`bot.reconcile`): the
memberships it made or took away, and the accounts it left enabled or disabled."""

from __future__ import annotations

import json

from .models import INVITE, INVITE_MANY, JOIN, LEAVE, OFFBOARD, REMOVE, AccessRequest
from .views import bulk


def membership_effects(req: AccessRequest) -> list[tuple[tuple[str, str], bool]]:
    """((email, group ID), True) for each membership an applied request made, False for each it took away."""
    email = req.target_email.lower()
    if req.kind in (JOIN, INVITE) and req.group_id:
        if req.duration_seconds:  # a time-bound grant: its lease says what holds
            return []
        return [((email, req.group_id), True)]
    if req.kind == INVITE_MANY and req.group_id:  # a bulk invite: each person who got the membership
        return [((p["email"], req.group_id), True) for p in bulk.people_of(req) if p.get("state") in bulk.DONE]
    if req.kind in (LEAVE, REMOVE) and req.group_id:
        return [((email, req.group_id), False)]
    if req.kind == OFFBOARD:
        return [((email, gid), False) for gid in plan_groups(req.plan)]
    return []


def plan_groups(plan: str | None) -> list[str]:
    """Group IDs named in a removal plan (JSON: ``{"groups": [id | {"id": …}, …]}``; anything else: none)."""
    try:
        data = json.loads(plan or "null")
    except ValueError:
        return []
    groups = data.get("groups") if isinstance(data, dict) else None
    out = []
    for g in groups or ():
        gid = g.get("id") if isinstance(g, dict) else g
        if isinstance(gid, str) and gid:
            out.append(gid)
    return out


def account_effects(req: AccessRequest) -> list[tuple[str, bool]]:
    """(email, enabled) of each Polaris account an applied request left enabled (True) or disabled (False): for a
    bulk invite each person it gave the membership (an account created for them, or theirs, enabled), else the
    request's own person as :meth:`AccessRequest.account_enabled_after` says (none: the account is as it was)."""
    if req.kind == INVITE_MANY:
        return [(p["email"].lower(), True) for p in bulk.people_of(req) if p.get("state") in bulk.DONE]
    enabled = req.account_enabled_after()
    return [] if enabled is None else [(req.target_email.lower(), enabled)]
