"""Database tables: access requests, their approvals, the append-only audit log (chained: ``audit_chain``), Slack
event IDs seen, the Slack messages owed (the delivery ledger, :mod:`bot.deliveries`), leases, the marks of
periodic jobs and the reconcile baseline.

SQLAlchemy 2.0 declarative models; Alembic (``migrations/``) creates them on SQLite and PostgreSQL.
Times are stored as naive UTC and read back as aware UTC (:class:`UTCDateTime`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy import text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Access request kinds
JOIN = "join"  # requester joins a group (account created with the group if they have none)
INVITE = "invite"  # an account (or membership) for someone else
INVITE_MANY = "invite_many"  # several people into one group, one decision (plan: the people, bot/views/bulk.py)
RESET_PASSWORD = "reset_password"
LEAVE = "leave"  # the requester leaves a group (no approval: less access needs none)
REMOVE = "remove"  # someone is removed from a group (decided by the group's approvers)
OFFBOARD = "offboard"  # a user loses every group and is disabled (decided by admins)
CREATE_GROUP = "create_group"  # a new Polaris group (admins ask, another admin decides)
EDIT_GROUP = "edit_group"  # a group's name or permissions changed (GET, then PUT of the whole group)
DELETE_GROUP = "delete_group"  # a group deleted (its members lose it)
GROUP_CHANGES = (CREATE_GROUP, EDIT_GROUP, DELETE_GROUP)  # kinds that change a group itself (plan: the change)
UPDATE_USER = "update_user"  # a user's names or enabled flag changed (GET, then PUT of the whole user)
ADMIN_DECIDED = (OFFBOARD, *GROUP_CHANGES, UPDATE_USER)  # kinds ADMINS decide when the policy names nobody
KINDS = (JOIN, INVITE, INVITE_MANY, RESET_PASSWORD, LEAVE, REMOVE, OFFBOARD, *GROUP_CHANGES, UPDATE_USER)
GRANTS = (JOIN, INVITE)  # kinds that give a membership (and may be time-bound)
REMOVALS = (LEAVE, REMOVE, OFFBOARD)  # kinds that take access away

# Access request states
PENDING, APPROVED, APPLIED, FAILED, DENIED, EXPIRED = "pending", "approved", "applied", "failed", "denied", "expired"
CANCELLED = "cancelled"  # withdrawn by the requester, or closed by an offboarding, before it was decided
STATES = (PENDING, APPROVED, APPLIED, FAILED, DENIED, EXPIRED, CANCELLED)
OPEN_STATES = (PENDING, APPROVED)
#: A request whose requester was not told its state yet (the partial index ``ix_access_requests_untold``).
UNTOLD = "notified_state IS NULL OR notified_state <> state"

#: The requester of a request the bot itself opened (an offboarding card after a Slack deactivation).
BOT_REQUESTER = "bot"

# Lease states (table ``leases``)
LEASE_PENDING = "pending"  # prepared just before the membership is written in Polaris (the apply is under way)
LEASE_ACTIVE = "active"  # the membership is in Polaris and ends at ``ends_at``
LEASE_ENDED = "ended"  # over: removed, or kept on purpose (``end_reason``)
LEASE_STATES = (LEASE_PENDING, LEASE_ACTIVE, LEASE_ENDED)


def utcnow() -> dt.datetime:
    """The current time, aware, in UTC."""
    return dt.datetime.now(dt.timezone.utc)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC; returns aware UTC datetimes (SQLite keeps no time zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class AccessRequest(Base):
    """One access request: who asked (``requester_*``), for whom (``target_*``), what (``kind``, group),
    why (``reason``), its ``state`` and how it ended. The approval card is ``approval_channel``/``approval_ts``.

    ``notified_state`` is the last state whose DM to the requester is settled (delivered, or given up and
    handed to ``ADMINS``; the ``deliveries`` ledger holds each attempt); ``retries`` counts Retry presses.
    ``claimed_by`` names the worker applying it (informational; the lock is in :mod:`bot.claims`). A Polaris
    write that cannot be repeated blindly (the reset PUT, ``POST /v1/users``) is bracketed: ``write_started_at``
    is committed just before it is sent, ``write_answered_at`` when Polaris answered it with success, and
    ``write_had_update_password`` says whether the user already had ``UPDATE_PASSWORD`` pending before the
    reset PUT. Started and not answered = outcome unknown: a resumed apply waits out the write's time budget
    and looks in Polaris before anything is sent again (revision 0005).
    """

    __tablename__ = "access_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    requester_id: Mapped[str] = mapped_column(String(32))
    requester_email: Mapped[str | None] = mapped_column(String(320))
    target_email: Mapped[str] = mapped_column(String(320))
    target_slack_id: Mapped[str | None] = mapped_column(String(32))
    target_first_name: Mapped[str] = mapped_column(String(200), default="")
    target_last_name: Mapped[str] = mapped_column(String(200), default="")
    group_id: Mapped[str | None] = mapped_column(String(64))
    group_name: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    approvals_required: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(32))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    manager_id: Mapped[str | None] = mapped_column(String(32))
    manager_dm_channel: Mapped[str | None] = mapped_column(String(32))
    manager_dm_ts: Mapped[str | None] = mapped_column(String(32))
    approval_channel: Mapped[str | None] = mapped_column(String(32))
    approval_ts: Mapped[str | None] = mapped_column(String(32))
    post_attempts: Mapped[int] = mapped_column(Integer, default=0)
    card_stale: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    write_started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    write_answered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    write_had_update_password: Mapped[bool | None] = mapped_column(Boolean)
    polaris_user_id: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(Text)
    applied_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    open_key: Mapped[str | None] = mapped_column(String(400))
    notified_state: Mapped[str | None] = mapped_column(String(12))
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duration_seconds: Mapped[int | None] = mapped_column(Integer)  # a time-bound grant; None: for good
    plan: Mapped[str | None] = mapped_column(Text)  # JSON: what a removal or offboarding will take away
    # Approver experience (revision 0008): the next reminder and how many were sent, the escalation, the
    # decider's note (a deny reason or an approval comment) and, when less was granted, the duration asked.
    remind_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalate_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    asked_duration_seconds: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_access_requests_requester_state", "requester_id", "state"),
        Index("ix_access_requests_state_expires", "state", "expires_at"),
        Index("ix_access_requests_state_next", "state", "next_attempt_at"),
        Index("ix_access_requests_state_updated", "state", "updated_at"),
        Index("ix_access_requests_card_stale", "card_stale"),
        Index("ix_access_requests_state_remind", "state", "remind_at"),
        Index("ix_access_requests_state_escalate", "state", "escalate_at"),
        # The worker's "requester never told" check reads only untold rows (revision 0009): a partial index
        Index(
            "ix_access_requests_untold",
            "updated_at",
            postgresql_where=text(UNTOLD),
            sqlite_where=text(UNTOLD),
        ),
        UniqueConstraint("open_key", name="uq_access_requests_open_key"),
    )

    def account_enabled_after(self) -> bool | None:
        """Whether the Polaris account is enabled once this is applied (a grant: yes; an offboarding: no; a user
        update: as its ``plan``, which the bot wrote as JSON, says); ``None``: it leaves the account as it is."""
        if self.kind in (*GRANTS, OFFBOARD):
            return self.kind != OFFBOARD
        plan = json.loads(self.plan or "{}") if self.kind == UPDATE_USER else {}
        return plan.get("enabled") if isinstance(plan, dict) and isinstance(plan.get("enabled"), bool) else None

    @staticmethod
    def make_open_key(email: str, group_id: str | None, kind: str | None = None) -> str:
        """The key that makes at most one open request per person and group (or password reset): grants share
        one key per person and group; a removal (leave, remove) has its own per person and group, an
        offboarding one per person, a bulk invite one per group and set of people; a group change one per group
        name (``email`` is then ``group:<name>``, the request's ``target_email``), whatever the change; a user
        update one per person."""
        prefix = {UPDATE_USER: "update_user", OFFBOARD: "offboard", **dict.fromkeys(GROUP_CHANGES, "group")}
        if kind in prefix:
            return f"{prefix[kind]}|{email.lower()}"
        if kind == INVITE_MANY:  # ``email``: the sorted people (bot/views/bulk.py target_label), one per set
            return f"bulk|{group_id}|{email.lower()}"
        if kind == LEAVE:  # its own: someone else's pending removal never stops you leaving
            return f"leave|{email.lower()}|{group_id}"
        if kind == REMOVE:
            return f"remove|{email.lower()}|{group_id}"
        return f"{email.lower()}|{group_id or 'reset'}"


class Approval(Base):
    """One approver's approval of one request (several are needed under a two-person rule)."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    approver_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("request_id", "approver_id", name="uq_approvals_request_approver"),)


class AuditEvent(Base):
    """One append-only audit row: ``at`` (UTC), ``actor`` (Slack user ID, or ``bot``), ``action``
    (e.g. ``command``, ``request.created``, ``decision.approve``, ``decision.refused``, ``polaris.call``,
    ``notify``), ``request_id``, ``target`` (an email or group), ``outcome`` (``ok``, ``refused``,
    ``error`` …), ``detail`` (a short allow-listed text, never headers or secrets) and, for Polaris calls,
    ``polaris_method``, ``polaris_path``, ``polaris_status`` and ``duration_ms``. ``prev_hash`` and ``row_hash``
    chain the rows (``<algorithm>:<hex>``, :mod:`bot.audit_chain`; revision 0007)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str | None] = mapped_column(String(36))
    target: Mapped[str | None] = mapped_column(String(320))
    outcome: Mapped[str] = mapped_column(String(20), default="ok")
    detail: Mapped[str | None] = mapped_column(Text)
    polaris_method: Mapped[str | None] = mapped_column(String(8))
    polaris_path: Mapped[str | None] = mapped_column(String(300))
    polaris_status: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    prev_hash: Mapped[str | None] = mapped_column(String(80))  # the seal of the row before (bot.audit_chain)
    row_hash: Mapped[str | None] = mapped_column(String(80))  # this row's seal, over its fields and prev_hash

    __table_args__ = (
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_request", "request_id"),
        Index("ix_audit_log_at", "at"),
    )


class SlackEvent(Base):
    """Events API ``event_id`` values already handled (Slack retries up to 3 times, within minutes); the
    worker deletes rows older than a day (index on ``received_at``)."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_slack_events_received_at", "received_at"),)


class Delivery(Base):
    """One Slack message owed to one recipient about one request (see :mod:`bot.deliveries`).

    ``kind``: ``dm``, ``relay`` (a notice to an admin) or ``card``; ``recipient``: a Slack user or channel
    ID; ``key``: what it is about (a request state such as ``approved``, ``approval:1``, ``card``), unique
    with the first three; ``state``: the request state a requester DM tells; ``text``: a DM's text;
    ``content_hash``: what a card should show; ``status``: ``pending``, ``delivered``, ``failed`` or
    ``superseded``; ``attempts`` made, ``next_attempt_at`` (a backoff, or the lease of the attempt under way)
    and Slack's ``last_error``."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(12))
    recipient: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(12))
    text: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    blocks: Mapped[str | None] = mapped_column(Text)  # a DM's Block Kit blocks, JSON (buttons), or None
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("request_id", "kind", "recipient", "key", name="uq_deliveries_request_kind_recipient_key"),
        Index("ix_deliveries_status_next", "status", "next_attempt_at"),
    )


class Lease(Base):
    """A time-bound membership: ``email`` (``polaris_user_id``, ``slack_id``) is in ``group_id`` until
    ``ends_at``, then the worker removes it (``DELETE /v1/groups/{id}/members``), once.

    ``request_id``: the grant that made it; ``extended_by``: the latest grant that moved its end. ``state``:
    ``pending`` (written just before the membership is added in Polaris, so a resumed apply knows the
    membership is its own), ``active``, ``ended``. ``active_key`` (``email|group_id``, unique, ``None`` once
    ended) makes at most one lease per person and group: a later grant extends it. ``started_at``: when the
    membership was applied (the time counts from there); ``warn_at``: when the person is offered Extend and
    I'm done (a tenth of the duration before the end, at most an hour), ``warned_at`` once done. Removal
    bookkeeping: ``attempts``, ``next_attempt_at`` (backoff on Polaris faults; once ended: the announcement of
    the end still owed), ``last_error``. Once over:
    ``ended_at``, ``end_reason`` (``expired``, ``done``, ``left``, ``removed``, ``offboarded``,
    ``user_gone``, ``group_gone``, ``made_permanent``, ``not_applied``) and ``ended_by`` (a Slack user ID or
    ``bot``). Times are aware UTC (revision 0006)."""

    __tablename__ = "leases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"))
    extended_by: Mapped[str | None] = mapped_column(String(36))
    email: Mapped[str] = mapped_column(String(320))
    slack_id: Mapped[str | None] = mapped_column(String(32))
    polaris_user_id: Mapped[str | None] = mapped_column(String(64))
    group_id: Mapped[str] = mapped_column(String(64))
    group_name: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(12), default=LEASE_PENDING)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    active_key: Mapped[str | None] = mapped_column(String(400))
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    warn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    warned_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(200))
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))
    ended_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("active_key", name="uq_leases_active_key"),
        Index("ix_leases_state_ends", "state", "ends_at"),
        Index("ix_leases_state_warn", "state", "warn_at"),
        Index("ix_leases_request", "request_id"),
        Index("ix_leases_email_state", "email", "state"),
        Index("ix_leases_state_next", "state", "next_attempt_at"),
    )

    @staticmethod
    def make_active_key(email: str, group_id: str) -> str:
        """At most one pending or active lease per person and group."""
        return f"{email.lower()}|{group_id}"


class AuditChainHead(Base):
    """The head of the audit chain (one row, ``id`` 1): the ``last_id`` and ``last_hash`` of the newest sealed
    ``audit_log`` row. Every append locks it in its own transaction, so appends form one chain across
    processes (:mod:`bot.audit_chain`, revision 0007)."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_hash: Mapped[str | None] = mapped_column(String(80))
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ScheduleMark(Base):
    """When a periodic job last ran, shared by every process: ``name`` (``witness``, ``reconcile``,
    ``reconcile.baseline``) and ``at`` (aware UTC), with a short ``detail`` (revision 0007)."""

    __tablename__ = "schedule_marks"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str | None] = mapped_column(Text)


class ReconcileBaseline(Base):
    """What ``app.py reconcile --baseline`` accepted as Polaris's state: a membership (``kind`` ``member``:
    ``email`` in ``group_id``) or an account (``kind`` ``account``: ``email`` and whether it was
    ``enabled``). Replaced whole by each baseline; ``taken_at`` is when (revision 0007)."""

    __tablename__ = "reconcile_baseline"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(12))
    email: Mapped[str] = mapped_column(String(320))
    group_id: Mapped[str | None] = mapped_column(String(64))
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_reconcile_baseline_kind_email", "kind", "email"),)


class CommandWindow(Base):
    """One person's command rate-limit window (revision 0009): ``count`` commands since ``started_at`` (aware
    UTC). Moved by one upsert per command (:meth:`bot.access.admission.Admission.admit`), so the limit costs
    one indexed row, not a ``COUNT`` over ``audit_log``, and holds across processes."""

    __tablename__ = "command_windows"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    count: Mapped[int] = mapped_column(Integer)


class DmChannel(Base):
    """A person's Slack IM channel, as ``conversations.open`` answered (revision 0009), shared by every process
    so the channel is looked up once per person, not once per message (:class:`bot.slack.DmChannels`)."""

    __tablename__ = "dm_channels"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
