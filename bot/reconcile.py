"""Drift between Polaris and the bot's records (``python app.py reconcile``; the worker every
``RECONCILE_INTERVAL``): what Polaris holds against what the bot granted, removed, or accepted as a baseline.

What the bot believes of one person (email) and group is the latest of: the baseline (``--baseline``: member or
not at ``taken_at``), each applied grant (``join``/``invite``: member), each applied removal (``leave``,
``remove``, ``offboard``: not a member), each lease (active: member; pending: no effect, its apply is under way; ended ``expired``, ``done``,
``left``, ``removed``, ``offboarded``: not a member; ended ``made_permanent``: member; ``not_applied``,
``user_gone``, ``group_gone``: no effect). Of an account: enabled after an applied grant (the person is meant
to have access) or as in the baseline, disabled after an offboarding. No baseline and no record: a membership
is not expected.

Findings (:class:`Finding`): ``outside_grant`` (a membership the bot never granted), ``grant_gone`` (one it
granted, or the baseline held, that is no longer there), ``lease_still_member`` (a lease ended, its membership
still there, nothing later granted it: the removal is retried, ``PolarisClient.remove_members`` under the
``user:{email}`` claim, audited ``reconcile.removal``), ``account_enabled`` / ``account_disabled`` (changed
outside the bot). Who made an outside change is read from Polaris's own audit events (``GET /v1/audit/events``)
where the API key may (403: the report says so and goes on). It changes nothing else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
from typing import Callable, Iterable

from sqlalchemy import delete, select

from .audit import AuditLog, audit_context
from .claims import Claims
from .db import Database
from .models import (
    APPLIED,
    LEASE_ENDED,
    LEASE_PENDING,
    AccessRequest,
    Lease,
    ReconcileBaseline,
    ScheduleMark,
)
from .reconcile_effects import account_effects, membership_effects
from .reconcile_events import readded
from .polaris import PolarisAuthError, PolarisClient, PolarisError, User

log = logging.getLogger(__name__)

#: Lease end reasons that took the membership away: a membership still there is removed again.
RETRY_END_REASONS = frozenset({"expired", "done", "left", "removed", "offboarded"})
#: Lease end reasons that leave no expectation (and are never retried).
NO_EFFECT_END_REASONS = frozenset({"not_applied", "user_gone", "group_gone"})
BASELINE_MARK = "reconcile.baseline"
EVENT_TYPES = {
    "outside_grant": ("GROUP_MEMBER_ADDED", "USER_GROUPS_ADDED", "USER_CREATED", "USER_UPDATED"),
    "grant_gone": ("GROUP_MEMBER_REMOVED", "USER_GROUPS_REMOVED", "USER_DELETED", "USER_UPDATED", "GROUP_DELETED"),
    "account_enabled": ("USER_ENABLED", "USER_UPDATED"),
    "account_disabled": ("USER_DISABLED", "USER_UPDATED"),
}
AUDIT_EVENTS_DAYS = 31  # Polaris keeps its audit events at least this long


@dataclasses.dataclass
class Finding:
    """One difference: ``kind`` (module docstring), ``email``, ``group_id``/``group_name`` (memberships),
    ``source`` (``bot``, ``baseline``, ``lease``: what said otherwise), ``detail``, ``by`` (who made the change,
    from Polaris's audit events, or None) and ``action`` (what reconcile did: ``removed``, ``removal failed …``)."""

    kind: str
    email: str
    group_id: str | None = None
    group_name: str | None = None
    source: str | None = None
    detail: str = ""
    by: str | None = None
    action: str | None = None


@dataclasses.dataclass
class Report:
    """One run: ``at``, ``baseline_at`` (None without a baseline), ``users`` and ``memberships`` read from
    Polaris, ``findings`` and ``notes`` (e.g. that Polaris's audit events could not be read)."""

    at: dt.datetime
    baseline_at: dt.datetime | None
    users: int
    memberships: int
    findings: list[Finding]
    notes: list[str]

    def as_json(self) -> str:
        """The report as one JSON object (stable keys)."""
        body = dataclasses.asdict(self)
        body["at"] = self.at.isoformat()
        body["baseline_at"] = self.baseline_at.isoformat() if self.baseline_at else None
        return json.dumps(body, indent=2, sort_keys=True)

    def as_text(self) -> str:
        """The report for a terminal or Slack (plain text, a line per finding)."""
        base = f"baseline of {self.baseline_at:%Y-%m-%d %H:%M} UTC" if self.baseline_at else "no baseline"
        lines = [
            f"Reconcile {self.at:%Y-%m-%d %H:%M:%S} UTC ({base}): {self.users} users and {self.memberships} "
            f"memberships in Polaris, {len(self.findings)} difference{'s' * (len(self.findings) != 1)}."
        ]
        for f in self.findings:
            where = f" in {f.group_name or f.group_id}" if f.group_id else ""
            by = f"; by {f.by}" if f.by else ""
            action = f"; {f.action}" if f.action else ""
            lines.append(f"- {f.kind}: {f.email}{where}: {f.detail}{by}{action}")
        lines += [f"Note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclasses.dataclass
class _Belief:
    at: dt.datetime
    member: bool
    source: str
    retry: Lease | None = None  # an ended lease whose removal may be retried


_FAR_PAST = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class Reconciler:
    """Compares Polaris with the bot's records on ``db`` (module docstring). ``clock`` returns aware UTC now."""

    def __init__(
        self, db: Database, polaris: PolarisClient, audit: AuditLog, claims: Claims, clock: Callable[[], dt.datetime]
    ):
        self.db, self.polaris, self.audit, self.claims, self.clock = db, polaris, audit, claims, clock

    # ------------------------------------------------------------------------------ Polaris
    def _polaris_state(self) -> tuple[dict[str, User], dict[str, str]]:
        groups = {g.id: g.name for g in self.polaris.list_groups()}
        users = {u.email.lower(): u for u in self.polaris.iter_users()}
        return users, groups

    # ------------------------------------------------------------------------------ baseline
    def take_baseline(self) -> Report:
        """Accept Polaris's state now: the baseline rows are replaced in one transaction. Audited
        (``reconcile.baseline``). Raises :class:`bot.polaris.PolarisError` when Polaris cannot be read."""
        now = self.clock()
        with audit_context("bot"):
            users, _groups = self._polaris_state()
        rows = [ReconcileBaseline(kind="account", email=e, enabled=u.enabled, taken_at=now) for e, u in users.items()]
        rows += [
            ReconcileBaseline(kind="member", email=e, group_id=gid, taken_at=now)
            for e, u in users.items()
            for gid in sorted(u.group_ids)
        ]
        with self.db.session() as s:
            s.execute(delete(ReconcileBaseline))
            s.add_all(rows)
            mark = s.get(ScheduleMark, BASELINE_MARK) or ScheduleMark(name=BASELINE_MARK)
            replaced = f" It replaces the baseline of {mark.at:%Y-%m-%d %H:%M} UTC." if mark.at else ""
            mark.at, mark.detail = now, f"{len(users)} users"
            s.add(mark)
            memberships = len(rows) - len(users)
            detail = f"{len(users)} users, {memberships} memberships accepted{' (replaced)' * bool(replaced)}"
            self.audit.record("bot", "reconcile.baseline", detail=detail, session=s)
        return Report(
            now, now, len(users), memberships, [], [f"Baseline taken: later runs report what changed.{replaced}"]
        )

    # ------------------------------------------------------------------------------ the run
    def run(self, actor: str = "bot") -> Report:
        """Compare, retry the removals of ended leases, name who made outside changes; audited
        (``reconcile.run``, and ``reconcile.removal`` per retry). Raises :class:`bot.polaris.PolarisError` when
        Polaris cannot be read (audited as an error)."""
        now = self.clock()
        try:
            with audit_context(actor):
                users, groups = self._polaris_state()
        except PolarisError as e:
            self.audit.record(actor, "reconcile.run", outcome="error", detail=f"Polaris: {e.status} {e.code}")
            raise
        beliefs, accounts, baseline_at = self._beliefs()
        findings = list(self._compare(users, groups, beliefs, accounts))
        notes: list[str] = []
        stale = [(f, beliefs[(f.email, f.group_id)].retry) for f in findings if f.kind == "lease_still_member"]
        readded = self._readded(stale, users)
        for f, lease in stale:
            if (f.email, f.group_id) in readded:  # given back in Polaris after the lease ended: not ours to undo
                f.kind, f.detail = "outside_grant", "added again in Polaris after its lease ended; left in place"
                continue
            f.action = self._retry_removal(lease, users[f.email], actor)
        self._name_changers([f for f in findings if f.kind != "lease_still_member"], users, notes, now)
        memberships = sum(len(u.group_ids) for u in users.values())
        report = Report(now, baseline_at, len(users), memberships, findings, notes)
        kinds = sorted({f.kind for f in findings})
        detail = f"{len(findings)} differences" + (f" ({', '.join(kinds)})" if kinds else "")
        self.audit.record(actor, "reconcile.run", outcome="ok" if not findings else "drift", detail=detail)
        return report

    def _beliefs(self) -> tuple[dict[tuple[str, str], _Belief], dict[str, _Belief], dt.datetime | None]:
        """What the bot believes, per (email, group id) and per email (enabled), with the baseline's time."""
        members: dict[tuple[str, str], _Belief] = {}
        accounts: dict[str, _Belief] = {}

        def note(table: dict, key, belief: _Belief) -> None:
            if key not in table or table[key].at <= belief.at:
                table[key] = belief

        with self.db.session() as s:
            mark = s.get(ScheduleMark, BASELINE_MARK)
            baseline_at = mark.at if mark else None
            for row in s.scalars(select(ReconcileBaseline)):
                if row.kind == "member" and row.group_id:
                    note(members, (row.email.lower(), row.group_id), _Belief(row.taken_at, True, "baseline"))
                elif row.kind == "account" and row.enabled is not None:
                    note(accounts, row.email.lower(), _Belief(row.taken_at, row.enabled, "baseline"))
            for req in s.scalars(select(AccessRequest).where(AccessRequest.state == APPLIED)):
                for key, member in membership_effects(req):
                    note(members, key, _Belief(req.applied_at or req.updated_at, member, "bot"))
                for email, enabled in account_effects(req):  # a grant, a bulk invite, an offboarding, a user update
                    note(accounts, email, _Belief(req.applied_at or req.updated_at, enabled, "bot"))
            for lease in s.scalars(select(Lease)):
                belief = _lease_belief(lease)
                if belief is not None:
                    note(members, (lease.email.lower(), lease.group_id), belief)
        if baseline_at is not None:
            _after_baseline(members, accounts, baseline_at)
        return members, accounts, baseline_at

    def _compare(self, users: dict[str, User], groups: dict[str, str], members, accounts) -> Iterable[Finding]:
        held = {(email, gid) for email, u in users.items() for gid in u.group_ids}
        for email, gid in sorted(held):
            belief = members.get((email, gid))
            if belief is not None and belief.member:
                continue
            name = groups.get(gid)
            if belief is not None and belief.retry is not None:
                why = f"the lease ended ({belief.retry.end_reason}) but the membership is still there"
                yield Finding("lease_still_member", email, gid, name, "lease", why)
            elif belief is not None:
                yield Finding(
                    "outside_grant",
                    email,
                    gid,
                    name,
                    belief.source,
                    f"added outside the bot ({belief.source} says not a member)",
                )
            else:
                yield Finding("outside_grant", email, gid, name, None, "a membership the bot never granted")
        for (email, gid), belief in sorted(members.items()):
            if belief.member and (email, gid) not in held:
                if email not in users:
                    why = "the user is no longer in Polaris"
                elif gid not in groups:
                    why = "the group no longer exists"
                else:
                    why = "removed outside the bot"
                yield Finding("grant_gone", email, gid, groups.get(gid), belief.source, why)
        for email, belief in sorted(accounts.items()):
            user = users.get(email)
            if user is None or user.enabled == belief.member:
                continue
            kind = "account_enabled" if user.enabled else "account_disabled"
            state = "enabled" if user.enabled else "disabled"
            yield Finding(
                kind, email, source=belief.source, detail=f"{state} outside the bot ({belief.source} says otherwise)"
            )

    def _retry_removal(self, lease: Lease, user: User, actor: str) -> str:
        """Remove ``user`` from the lease's group again, under the ``user:{email}`` claim; audited."""
        email = lease.email.lower()
        with self.claims.hold(f"user:{email}") as got:
            if not got:
                return "removal not retried now (another change of this user is under way)"
            try:
                with audit_context(actor, lease.request_id):
                    self.polaris.remove_members(lease.group_id, [user.id])
            except PolarisError as e:
                detail = f"{lease.group_id}: {e.status} {e.code}"
                self.audit.record(
                    actor,
                    "reconcile.removal",
                    request_id=lease.request_id,
                    target=email,
                    outcome="error",
                    detail=detail,
                )
                return f"removal retried and failed ({e.status or 'no answer'} {e.code})"
        self.audit.record(
            actor,
            "reconcile.removal",
            request_id=lease.request_id,
            target=email,
            detail=f"removed from {lease.group_id}",
        )
        return "removal retried: removed"

    def _readded(self, stale: list, users: dict[str, User]) -> set[tuple[str, str]]:
        """(email, group) of ``stale`` leases added again in Polaris (:func:`bot.reconcile_events.readded`)."""
        if not stale:
            return set()
        try:
            events = self.polaris.list_audit_events(since=min(x.created_at for _f, x in stale) - dt.timedelta(days=1))
        except PolarisError:
            return set()  # unreadable: nothing is known to be added again, and the removal is retried
        return readded([(f.email, f.group_id) for f, _lease in stale], users, events)

    def _name_changers(
        self, findings: list[Finding], users: dict[str, User], notes: list[str], now: dt.datetime
    ) -> None:
        """Fill ``Finding.by`` from Polaris's audit events; a note when they cannot be read."""
        if not findings:
            return
        try:
            events = self.polaris.list_audit_events(since=now - dt.timedelta(days=AUDIT_EVENTS_DAYS))
        except PolarisAuthError:
            notes.append(
                "Polaris's audit events are not readable with this API key (403: it lacks AccessAuditLogs), so who made the changes is not named."
            )
            return
        except PolarisError as e:
            notes.append(
                f"Polaris's audit events could not be read ({e.status or 'no answer'} {e.code}); who made the changes is not named."
            )
            return
        for f in findings:
            user = users.get(f.email)
            uid = user.id if user else None
            wanted = EVENT_TYPES.get(f.kind, ())
            matches = [
                e for e in events if e.type in wanted and ((uid and e.concerns(uid)) or f.email in e.summary.lower())
            ]
            if f.group_id:
                matches = [e for e in matches if f.group_id in json.dumps(e.raw)] or matches
            if matches:
                e = max(matches, key=lambda e: (e.time, -wanted.index(e.type)))  # the latest; the most specific type
                name = e.raw.get("actorName") or e.actor_id or "unknown"
                f.by = f"{name} ({e.actor_type or 'unknown'}, {e.type} at {e.time})"


def _after_baseline(members: dict, accounts: dict, baseline_at: dt.datetime) -> None:
    """After a baseline, a record older than it says nothing: the baseline holds what was there then."""
    for key, belief in list(members.items()):
        if belief.at < baseline_at and belief.source != "baseline":
            members[key] = _Belief(baseline_at, False, "baseline")
    for key, belief in list(accounts.items()):
        if belief.at < baseline_at and belief.source != "baseline":
            del accounts[key]


def _lease_belief(lease: Lease) -> _Belief | None:
    if lease.state == LEASE_PENDING:
        return None  # its apply is under way: the membership may or may not be there yet
    if lease.state != LEASE_ENDED:
        return _Belief(lease.started_at or lease.created_at, True, "lease")
    at = lease.ended_at or lease.updated_at or _FAR_PAST
    if lease.end_reason == "made_permanent":
        return _Belief(at, True, "lease")
    if lease.end_reason in RETRY_END_REASONS:
        return _Belief(at, False, "lease", retry=lease)
    return None
