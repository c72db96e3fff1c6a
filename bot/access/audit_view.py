"""``/polaris audit <email | @user | group> [page N]`` (admins only, ephemeral, paged): the trail of one person or
one group, read from the database and checked against Polaris now.

For each access request about them, newest first, :data:`PAGE_SIZE` a page: who asked for what and why, who
approved or denied and when, what Polaris answered (the request's outcome and its last Polaris call), whether
the membership still holds in Polaris today, and its lease (time-bound grants). Read-only: it writes nothing
but the audit row of a refusal (the command itself is audited by admission). Within Block Kit's limits: at most
:data:`PAGE_SIZE` + 3 blocks, each section under 3,000 characters.
"""

from __future__ import annotations

import math

from sqlalchemy import and_, func, or_, select

from .. import views
from ..commands import Command, UsageError
from ..models import GRANTS, INVITE_MANY, AccessRequest, Approval, AuditEvent, Lease
from ..polaris import normalize_group_name
from ..views import bulk
from .context import Context
from .queries import Queries
from .reply import Reply

PAGE_SIZE = 10
NOT_ADMIN = "`/polaris audit` is for admins (ADMINS)."
MEMBERS_MAX = 5000  # a group's members read to tell whether grants still hold (50 pages of 100)


class AuditView:
    def __init__(self, ctx: Context, queries: Queries):
        self.ctx, self.queries = ctx, queries

    def show(self, user_id: str, cmd: Command) -> Reply:
        """The page ``cmd.page`` of the trail of ``cmd.target`` (a person: what they asked, what was asked for them,
        the bulk invites naming them) or ``cmd.rest`` (a group). Raises
        :class:`bot.commands.UsageError` for an unknown group or person; Polaris errors propagate (to
        :func:`bot.access.errors.guarded`)."""
        if user_id not in self.ctx.settings.admins:
            self.ctx.audit.record(user_id, "audit.view", outcome="refused", detail="not an admin")
            return Reply(f":no_entry: {NOT_ADMIN}")
        if cmd.rest:
            try:
                group = self.queries.resolve_group(cmd.rest)
            except UsageError:
                gone = self._gone_group(cmd.rest)  # deleted (through the bot or not): its trail stays readable
                if gone is None:
                    raise
                subject, where = gone
                holds = _gone_holds
            else:
                subject, where = f"group {group.name}", AccessRequest.group_id == group.id
                holds = self._group_holds(group.id)
        else:
            email = self.queries.email_for(user_id, cmd.target)
            subject = email
            named = and_(  # a bulk invite's target is a label; its plan names each person (bot/views/bulk.py)
                AccessRequest.kind == INVITE_MANY,
                AccessRequest.plan.contains(bulk.plan_names(email), autoescape=True),
            )
            where = or_(
                func.lower(AccessRequest.target_email) == email,
                func.lower(AccessRequest.requester_email) == email,
                named,
            )
            holds = self._person_holds(email)
        total, rows, facts = self._page(where, cmd.page)
        pages = max(1, math.ceil(total / PAGE_SIZE))
        title = f"Audit: {subject}"
        if not rows:
            note = (
                "No access requests."
                if cmd.page == 1
                else f"There {'are' if pages > 1 else 'is'} {pages} page{'s' * (pages > 1)}."
            )
            return Reply(f"{title}: {note}", [views.header(title), views.section(note)])
        blocks = [views.header(title)]
        blocks += [views.section(_request_text(r, facts, holds)) for r in rows]
        more = (
            f" `/polaris audit {views.esc(cmd.rest or subject)} page {cmd.page + 1}` for more."
            if cmd.page < pages
            else ""
        )
        blocks.append(
            views.context(f"Page {cmd.page} of {pages} ({total} request{'s' * (total != 1)}), newest first.{more}")
        )
        return Reply(f"{title}: {total} requests (page {cmd.page} of {pages})", blocks)

    def _gone_group(self, name: str):
        """(subject, filter) for the trail of a group Polaris no longer has, found by the name the requests
        about it kept (``group_name``, or a group change's ``group:<name>`` target); ``None`` when none did."""
        wanted = normalize_group_name(name)
        by_name = or_(func.lower(AccessRequest.group_name) == wanted, AccessRequest.target_email == f"group:{wanted}")
        with self.ctx.db.session() as s:
            rows = list(s.execute(select(AccessRequest.group_id, AccessRequest.group_name).where(by_name)))
        if not rows:
            return None
        ids = {gid for gid, _ in rows if gid}
        shown = next((n for _, n in rows if n), name)
        where = or_(by_name, AccessRequest.group_id.in_(ids)) if ids else by_name
        return f"group {shown} (no longer in Polaris)", where

    def _page(self, where, page: int) -> tuple[int, list[AccessRequest], dict]:
        with self.ctx.db.session() as s:
            total = s.scalar(select(func.count()).select_from(AccessRequest).where(where)) or 0
            rows = list(
                s.scalars(
                    select(AccessRequest)
                    .where(where)
                    .order_by(AccessRequest.created_at.desc(), AccessRequest.id)
                    .offset((page - 1) * PAGE_SIZE)
                    .limit(PAGE_SIZE)
                )
            )
            ids = [r.id for r in rows]
            facts: dict = {"approvals": {}, "leases": {}, "calls": {}}
            if ids:
                for a in s.scalars(select(Approval).where(Approval.request_id.in_(ids)).order_by(Approval.created_at)):
                    facts["approvals"].setdefault(a.request_id, []).append(a)
                for lease in s.scalars(
                    select(Lease)
                    .where(or_(Lease.request_id.in_(ids), Lease.extended_by.in_(ids)))
                    .order_by(Lease.created_at)
                ):
                    facts["leases"][lease.extended_by if lease.extended_by in ids else lease.request_id] = lease
                calls = select(AuditEvent).where(AuditEvent.request_id.in_(ids), AuditEvent.action == "polaris.call")
                for e in s.scalars(calls.order_by(AuditEvent.id)):
                    facts["calls"][e.request_id] = e  # the last one wins
        return total, rows, facts

    def _person_holds(self, email: str):
        """``holds(req)`` -> True/False (the membership is in Polaris now) or None (not a membership)."""
        user = self.ctx.polaris.find_user_by_email(email)
        groups = user.group_ids if user is not None else set()
        return lambda req: (req.group_id in groups) if req.kind in (*GRANTS, INVITE_MANY) and req.group_id else None

    def _group_holds(self, group_id: str):
        emails: set[str] = set()
        skip = 0
        while skip < MEMBERS_MAX:
            page = self.ctx.polaris.list_members(group_id, top=100, skip=skip)
            emails |= {u.email.lower() for u in page.values}
            skip += len(page.values)
            if not page.values or skip >= page.count:
                break
        return lambda req: (req.target_email.lower() in emails) if req.kind in GRANTS else None


def _gone_holds(req: AccessRequest) -> bool | None:
    """``holds`` for a group Polaris no longer has: no membership of it holds."""
    return False if req.kind in GRANTS else None


def _when(at) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at else "?"


def _request_text(req: AccessRequest, facts: dict, holds) -> str:
    """One request as mrkdwn (everything people or Polaris wrote escaped)."""
    state = views.STATE_LABEL.get(req.state, req.state)
    lines = [
        f"*{views.esc(req.kind)}*: {views.kind_phrase(req)}; *{views.esc(state)}* (request `{req.id[:8]}`)",
        f"Asked by {views.mention(req.requester_id)} on {_when(req.created_at)}"
        + (f": _{views.esc(views.clip(req.reason, 300))}_" if req.reason else " (no reason given)"),
    ]
    approvals = facts["approvals"].get(req.id, [])
    if approvals:
        lines.append(
            "Approved by " + ", ".join(f"{views.mention(a.approver_id)} ({_when(a.created_at)})" for a in approvals)
        )
    if req.decided_by and req.state == "denied":
        why = f": “{views.esc(req.decision_note)}”" if getattr(req, "decision_note", None) else ""
        lines.append(f"Denied by {views.mention(req.decided_by)} on {_when(req.decided_at)}{why}")
    elif req.decided_by and not approvals:
        lines.append(f"Decided by {views.mention(req.decided_by)} on {_when(req.decided_at)}")
    call = facts["calls"].get(req.id)
    answer = views.outcome_text(req)
    if answer or call is not None:
        last = (
            f" (last call {views.esc(call.polaris_method)} answered {call.polaris_status or 'nothing'})" if call else ""
        )
        lines.append(f"Polaris: {views.clip(answer, 600) or 'no outcome recorded'}{last}")
    held = holds(req) if req.state == "applied" else None
    if held is not None:
        lines.append("Holds in Polaris today: " + ("yes" if held else "*no*"))
    lease = facts["leases"].get(req.id)
    if lease is not None:
        if lease.state == "ended":
            lines.append(f"Lease: ended {_when(lease.ended_at)} ({views.esc(lease.end_reason or '?')})")
        else:
            lines.append(f"Lease: {views.esc(lease.state)}, ends {_when(lease.ends_at)}")
    return "\n".join(lines)
