"""The access-request workflow: commands, requests, decisions, durable apply, expiry, notifications.

:class:`AccessService` is the core the Slack handlers call after ``ack()``. It reaches Slack only through
:class:`bot.slack.SlackGateway` and Polaris only through :class:`bot.polaris.PolarisClient`, keeps all state
in the database (any number of processes may share one PostgreSQL), and audits everything.

Lifecycle of an access request (``access_requests.state``)::

    pending --approve (enough approvals)--> approved --apply ok--> applied
       |  \\--deny--> denied                    \\--apply fails for good--> failed --Retry--> approved
       \\--TTL passes--> expired

Decisions are compare-and-set updates on ``state = 'pending'``, so a double click or two approvers at
once decide once. An approved request is committed before any Polaris call; :meth:`AccessService.run_due`
(the worker) applies it, idempotently: it finds the user by email before creating one, treats an existing
membership as done, and never sends a password reset twice for one request.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import socket
import os
import re
import threading
import uuid
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from . import views
from .audit import AuditLog, audit_context
from .redact import redact
from .claims import Claims
from .commands import Command, Target, UsageError, check_reason, clean, is_quoted, parse, split_group_and_reason
from .config import Settings
from .db import Database
from . import deliveries as ledger
from .deliveries import CARD, DM, RELAY, DeliveryLedger, content_hash
from .lanes import POLARIS, Lanes, lane_for_command
from .models import (APPLIED, APPROVED, DENIED, EXPIRED, FAILED, INVITE, JOIN, OPEN_STATES, PENDING,
                     RESET_PASSWORD, AccessRequest, Approval, AuditEvent, Delivery, SlackEvent, utcnow)
from . import privilege
from .policy import MANAGER, Policy, Rule, load_policy
from .polaris import (Group, GroupCatalog, PolarisAuthError, PolarisClient, PolarisConflict, PolarisError,
                      PolarisNotFound, PolarisUnavailable)
from .slack import SlackError, SlackGateway, SlackIdentity

log = logging.getLogger(__name__)

ORG_ADMIN = privilege.ORG_ADMIN
APPLY_BACKOFF_BASE = 5.0       # seconds before the 2nd apply attempt; doubles each time
APPLY_BACKOFF_MAX = 300.0
#: How far Polaris's clock may be from ours when its audit events prove that a reset PUT landed.
RESET_EVENT_SKEW = dt.timedelta(seconds=60)
#: Seconds, beyond the Polaris read timeout, after which a write sent with its answer lost has either landed or
#: never will; only then is Polaris asked whether it landed (and the write sent again if not).
WRITE_SETTLE_MARGIN = 30.0
RESET_NOT_CONFIRMED = ("The password reset may not have been sent: Polaris did not answer in time and I could not "
                       "confirm it; press Retry to send it again")


class _NotConfirmed(Exception):
    """Internal: a write whose answer was lost could not be proven to have landed; ends the request failed."""


@dataclass
class Reply:
    """An answer for the person who typed a command or clicked: ``text`` (fallback/mrkdwn) and ``blocks``."""

    text: str
    blocks: list | None = None


def _worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def barred_reason(identity: SlackIdentity, whose: str) -> str | None:
    """Why the Slack account ``identity`` (``whose``: e.g. "The requester's") bars a request made by or
    for it (unknown, deactivated, bot or guest, the same flags as :attr:`SlackIdentity.barred`), as a
    sentence; ``None`` when it does not."""
    if not identity.exists:
        return f"{whose} Slack account no longer exists."
    if identity.deleted:
        return f"{whose} Slack account is deactivated."
    if identity.is_bot:
        return f"{whose} Slack account is a bot."
    if identity.is_guest:
        return f"{whose} Slack account is a guest account."
    return None


class AccessService:
    """The bot's core. Thread-safe: every call opens its own database sessions.

    ``settings``: :class:`bot.config.Settings`; ``db``: :class:`bot.db.Database` (migrated);
    ``polaris``: client; ``slack``: gateway; ``audit``: audit log; ``clock``: returns aware UTC now.
    """

    def __init__(self, settings: Settings, db: Database, polaris: PolarisClient, slack: SlackGateway,
                 audit: AuditLog, *, catalog: GroupCatalog | None = None, policy: Policy | None = None,
                 clock: Callable[[], dt.datetime] = utcnow, background_threads: int = 2,
                 max_queued: int = 2000):
        self.settings, self.db, self.polaris, self.slack, self.audit = settings, db, polaris, slack, audit
        self.policy = policy or load_policy(settings.policy_file, ttl=settings.request_ttl,
                                            manager_field=settings.manager_field)
        self.catalog = catalog or GroupCatalog(polaris, ttl=settings.group_cache_ttl)
        self.clock = clock
        self.claims = Claims(db)
        self.deliveries = DeliveryLedger(db, audit, lambda: self.clock())
        self._pruned_at: dt.datetime | None = None
        self.worker_name = _worker_name()
        self.wake: Callable[[], None] = lambda: None  # set by the worker: run_due soon
        # Work handed off by listeners after ack(): bounded lanes apart from Bolt's listener threads (which
        # run the acks), one for work that waits on Polaris and one for work that does not, so a slow Polaris
        # never holds up `help` (bot/lanes.py). Few threads on purpose: they share the GIL with the acks.
        self.lanes = Lanes(threads=background_threads, max_queued=max_queued)

    @property
    def max_queued(self) -> int:
        """The queue limit of each work lane (tasks accepted and not finished); settable."""
        return self.lanes.lane(POLARIS).max_queued

    @max_queued.setter
    def max_queued(self, value: int) -> None:
        self.lanes.set_max_queued(value)

    def background(self, fn: Callable[[], object], *, on_busy: Callable[[], object] | None = None,
                   lane: str = POLARIS) -> bool:
        """Run ``fn`` on the work lane ``lane`` (:data:`bot.lanes.LOCAL` for work that never waits on Polaris,
        :data:`bot.lanes.POLARIS`, the default, for work that may) after the listener has acked. Exceptions
        are logged, never lost. When the lane's ``max_queued`` tasks already wait, ``on_busy`` runs instead
        and False is returned."""
        return self.lanes.submit(lane, fn, on_busy)

    def command_lane(self, text: str | None) -> str:
        """The work lane for the ``/polaris`` command ``text`` (:func:`bot.lanes.lane_for_command`)."""
        return lane_for_command(text, groups_cached=self.catalog.fresh())

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for background work to finish (shutdown, tests)."""
        self.lanes.drain()

    # =============================================================================== commands
    def handle_command(self, user_id: str, text: str | None, *, channel_id: str | None = None) -> Reply:
        """Run one ``/polaris`` command for ``user_id`` and return the ephemeral answer. Never raises:
        bad input, Polaris and Slack failures become a clear message; unexpected errors are logged."""
        shown = clean(text, 200)
        return self.guarded(user_id, shown, lambda: self._run_command(user_id, text, shown, channel_id))

    def form_refusal(self, user_id: str) -> str | None:
        """Before the request form opens (``/polaris request`` with no arguments): admitted like a command
        (audited, rate limited, refused for guests, bots and deactivated accounts) and refused for a profile
        without an email. Returns the refusal or ``None``."""
        try:
            return self._admit(user_id, "request form", need_email=True)
        except SlackError:
            return "Slack did not answer a lookup I needed; please try again in a moment."

    def submit_form(self, user_id: str, group_id: str, reason: str) -> Reply:
        """The request form's submission: like ``/polaris request`` with a group chosen by ID."""
        self.audit.record(user_id, "command", detail=f"request form {group_id[:64]}")

        def work() -> Reply:
            text = check_reason(clean(reason, limit=None))  # refused with its length, never cut
            if self.catalog.by_id(group_id) is None:
                self.catalog.refresh()  # a group made in Polaris since the list was read
            return self.request_join(user_id, "", text, group_id=group_id)

        return self.guarded(user_id, "request form", work)

    def guarded(self, user_id: str, shown: str, work: Callable[[], Reply]) -> Reply:
        """Run ``work`` turning every failure into a :class:`Reply` for the person (never raises)."""
        try:
            with audit_context(user_id):
                return work()
        except UsageError as e:
            self.audit.record(user_id, "command.invalid", outcome="refused", detail=str(e))
            return Reply(f":warning: {views.esc(e)}")  # messages quote what people typed: escaped here, once
        except PolarisError as e:
            log.warning("command %r failed in Polaris: %s", shown[:40], e)
            return Reply(f":warning: {views.esc(redact(e.plain()))}. Nothing was changed.")
        except SlackError as e:
            log.warning("command failed in Slack: %s", e)
            return Reply(":warning: Slack did not answer a lookup I needed; please try again in a moment.")
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("command failed (ref %s)", ref)
            return Reply(f":warning: Something went wrong on my side (ref `{ref}`); nothing was changed.")

    def _run_command(self, user_id: str, text: str | None, shown: str, channel_id: str | None) -> Reply:
        command = parse(text)  # pure; a UsageError is audited by guarded()
        why = self._admit(user_id, shown, check_identity=command.name != "help")
        if why:
            return Reply(f":no_entry: {why}")
        return self._dispatch(user_id, command, channel_id)

    def _admit(self, user_id: str, shown: str, *, check_identity: bool = True, need_email: bool = False) -> str | None:
        """Let a command in, or say why not: a guest, bot or deactivated account (``users.info``, 60 s
        cache), a profile without an email when ``need_email``, or over the per-person rate limit. Every
        attempt is a ``command`` audit row; the rate limit is counted and the row written in one transaction.
        Raises :class:`SlackError` when Slack cannot be asked."""
        if check_identity:
            identity = self.slack.identity(user_id, max_age=60)
            if identity.barred or need_email:
                why = identity.refusal()
                if why:
                    self.audit.record(user_id, "command", outcome="refused", detail=f"{why} ({shown})")
                    return why
        with self.db.session() as s:
            over = self._over_command_limit(user_id, session=s)
            self.audit.record(user_id, "command", session=s, outcome="refused" if over else "ok",
                              detail=f"rate limited: {shown}" if over else shown)
        if over:
            return (f"You have sent more than {self.settings.max_commands_per_minute} commands in a minute; "
                    "please wait a moment.")
        return None

    def _over_command_limit(self, user_id: str, *, session=None) -> bool:
        """True when ``user_id`` sent ``MAX_COMMANDS_PER_MINUTE`` commands in the last 60 s (audit rows)."""
        since = self.clock() - dt.timedelta(seconds=60)
        query = select(func.count()).select_from(AuditEvent).where(
            AuditEvent.actor == user_id, AuditEvent.action == "command", AuditEvent.at >= since)
        if session is not None:
            count = session.scalar(query)
        else:
            with self.db.session() as s:
                count = s.scalar(query)
        return (count or 0) >= self.settings.max_commands_per_minute

    def _dispatch(self, user_id: str, cmd: Command, channel_id: str | None) -> Reply:
        if cmd.name == "help":
            return Reply(*views.help_message())
        if cmd.name == "whois":
            return self.cmd_whois(user_id, cmd.target)
        if cmd.name == "groups":
            return Reply(*views.group_list(self.catalog.all()))
        if cmd.name == "members":
            return self.cmd_members(cmd.rest)
        if cmd.name == "permissions":
            return Reply(*views.permission_catalogue(self.polaris.list_permissions()))
        if cmd.name == "request":
            if not cmd.rest:
                return Reply("Usage: `/polaris request <group> [reason]` (or the form, from a slash command).")
            group, reason = self._group_and_rest(cmd.rest)
            return self.request_join(user_id, group.name, check_reason(reason))
        if cmd.name == "invite":
            group, reason = self._group_and_rest(cmd.rest)
            return self.request_invite(user_id, cmd.target, group.name, check_reason(reason))
        if cmd.name == "reset-password":
            return self.request_reset(user_id, cmd.target)
        if cmd.name == "status":
            return self.cmd_status(user_id)
        if cmd.name == "pending":
            return self.cmd_pending(user_id)
        if cmd.name == "policy":
            return self.cmd_policy(user_id)
        raise UsageError("Try `/polaris help`.")

    # ------------------------------------------------------------------------------- lookups
    def _email_for(self, user_id: str, target: Target) -> str:
        if target.email:
            return target.email
        who = target.user_id or user_id
        identity = self.slack.identity(who)
        if not identity.exists:
            raise UsageError("I could not find that Slack user.")
        if not identity.email:
            raise UsageError("That person has no email on their Slack profile that I can read.")
        return identity.email.lower()

    def cmd_whois(self, user_id: str, target: Target) -> Reply:
        """``whois``: 2 Polaris calls (search, effective permissions)."""
        email = self._email_for(user_id, target)
        user = self.polaris.find_user_by_email(email)
        if user is None:
            return Reply(f"No Polaris user has the email `{views.esc(email)}`.")
        permissions = self.polaris.effective_permissions(user.id)
        return Reply(*views.whois(user, permissions, asked_for=email))

    def resolve_group(self, name: str) -> Group:
        """The group named ``name`` (case-insensitive, quotes ignored). On a miss the group list is read again
        from Polaris (:meth:`GroupCatalog.refresh`, at most every few seconds), so a group made outside the bot
        is found at once. Raises :class:`UsageError` quoting ``name`` whole, with the nearest names, when
        there is none."""
        group = self.catalog.by_name(name)
        if group is None:
            self.catalog.refresh()
            group = self.catalog.by_name(name)
        if group is not None:
            return group
        raise self._no_such_group(name, name)

    def _group_and_rest(self, rest: str) -> tuple[Group, str]:
        """``<group> [words]`` as typed (request, invite, members) -> (the group, the words after its name).

        The group is the quoted name, or the longest run of leading words naming a known group. When none is
        known, or words follow an unquoted name (a group made since, "Finance Readers", may be longer than the
        known "Finance"), the group list is read again (:meth:`GroupCatalog.refresh`: at most one Polaris call
        every few seconds) and the text split again. Raises :class:`UsageError` quoting the whole typed text
        (not a guessed first word) when it names no group."""
        group_text, after = split_group_and_reason(rest, [g.name for g in self.catalog.all()], check_lengths=False)
        group = self.catalog.by_name(group_text)
        if group is None or (after and not is_quoted(rest)):
            names = [g.name for g in self.catalog.refresh()]
            group_text, after = split_group_and_reason(rest, names, check_lengths=False)
            group = self.catalog.by_name(group_text)
        if group is None:
            raise self._no_such_group(group_text if is_quoted(rest) else rest.strip(), group_text)
        return group, after

    def _no_such_group(self, typed: str, guess: str) -> UsageError:
        """The refusal for text naming no group: ``typed`` quoted whole (escaped later, by :meth:`guarded`),
        suggestions near ``guess``."""
        near = self.catalog.nearest(guess)
        hint = (" Did you mean " + " or ".join(f"*{n}*" for n in near) + "?") if near else ""
        shown = typed if len(typed) <= 300 else typed[:299] + "…"
        return UsageError(f"There is no Polaris group called `{shown.replace('`', chr(39))}`"
                          f"{', nor one named by its first words' if len(typed.split()) > 1 and typed != guess else ''}."
                          f"{hint} `/polaris groups` lists them.")

    def cmd_members(self, rest: str) -> Reply:
        """``members <group>``: the first 50 members and the total. Words after the group name are refused
        (quoted back), not dropped."""
        group, extra = self._group_and_rest(rest)
        if extra:
            shown = extra if len(extra) <= 200 else extra[:199] + "…"
            raise UsageError(f"`/polaris members` takes one group name; I don't know what to do with "
                             f"`{shown.replace('`', chr(39))}` after *{group.name}*. Usage: `/polaris members <group>` "
                             "(quote a name of several words: `/polaris members \"Data Analyst\"`).")
        page = self.polaris.list_members(group.id, top=50)
        return Reply(*views.member_list(group, page.values, page.count))

    def cmd_status(self, user_id: str) -> Reply:
        since = self.clock() - dt.timedelta(days=30)
        with self.db.session() as s:
            rows = list(s.scalars(select(AccessRequest).where(
                AccessRequest.requester_id == user_id,
                or_(AccessRequest.state.in_(OPEN_STATES),
                    and_(AccessRequest.state == FAILED, AccessRequest.updated_at >= since)))
                .order_by(AccessRequest.created_at.desc()).limit(25)))
        return Reply(*views.request_list("Your open requests", rows, "You have no open requests."))

    def cmd_pending(self, user_id: str) -> Reply:
        with self.db.session() as s:
            rows = list(s.scalars(select(AccessRequest).where(
                AccessRequest.state == PENDING, AccessRequest.requester_id != user_id,
                AccessRequest.expires_at > self.clock()).order_by(AccessRequest.created_at).limit(200)))
        memo: dict[str, list[str]] = {}
        mine = [r for r in rows if user_id in self.approver_ids(r, memo) and user_id != r.target_slack_id]
        if not mine and user_id not in self.settings.deciders and user_id not in self.policy.direct_approvers():
            return Reply("You are not an approver, so nothing is waiting for you. `/polaris status` shows your own requests.")
        return Reply(*views.request_list("Requests awaiting a decision", mine[:25], "Nothing is waiting for your decision."))

    def cmd_policy(self, user_id: str) -> Reply:
        """``/polaris policy`` (admins): the effective rule for each group and for password resets."""
        if user_id not in self.settings.admins:
            return Reply("Only admins can see the approval policy.")
        lines = [f"*{views.esc(g.name)}*: {self.policy.for_group(g.name).describe()}" for g in self.catalog.all()]
        lines.append(f"*Password resets*: {self.policy.for_group(None).describe()}")
        default_who = ", ".join(views.mention(u) for u in sorted(self.settings.deciders)) or "none"
        head = f"Default approvers (APPROVERS and ADMINS): {default_who}. {privilege.describe()}"
        return Reply("Approval policy", [views.header("Approval policy"), views.section(head),
                                         views.section(views.bullet_list(lines, limit=30))])

    def first_delivery(self, event_id: str) -> bool:
        """True the first time an Events API ``event_id`` is seen (Slack retries up to 3 times); recorded in
        ``slack_events`` so every process agrees."""
        if not event_id:
            return True
        try:
            with self.db.session() as s:
                s.add(SlackEvent(event_id=event_id[:64], received_at=self.clock()))
            return True
        except IntegrityError:
            return False

    def home_view(self, user_id: str) -> dict:
        """The App Home tab for ``user_id``: help, their open requests, and what awaits their decision."""
        mine = self.cmd_status(user_id)
        blocks = [views.header("Polaris access"), views.section(views.HELP_TEXT), {"type": "divider"}]
        blocks += mine.blocks or []
        waiting = self.cmd_pending(user_id)
        if waiting.blocks and "not an approver" not in waiting.text:
            blocks += [{"type": "divider"}] + waiting.blocks
        return {"type": "home", "blocks": blocks[:100]}

    # ------------------------------------------------------------------------------- requests
    def rule_for(self, group_name: str | None) -> Rule:
        """The approval policy rule for a group (``None``: password resets)."""
        return self.policy.for_group(group_name)

    def manager_of(self, user_id: str) -> str | None:
        """The requester's manager: the configured Slack profile field (``users.profile.get``), else the
        policy's ``[managers]`` table; ``None`` when unknown or when it would be themselves."""
        manager = None
        if self.policy.manager_field:
            try:
                value = self.slack.profile_field(user_id, self.policy.manager_field)
            except SlackError as e:
                log.warning("manager field of %s unreadable: %s", user_id, e.error)
                value = None
            if value and re.match(r"^[UW][A-Z0-9]{2,}$", value.strip()):
                manager = value.strip()
        manager = manager or self.policy.managers.get(user_id)
        return None if manager == user_id else manager

    def is_privileged(self, group: Group | None) -> bool:
        """Organization Admin, or any group that grants an organization-level administration permission
        (the one list: :data:`bot.privilege.ORG_ADMIN_PERMISSIONS`): two approvals at least, never
        auto-approved, and approved only by Organization Admin members in Polaris."""
        return privilege.is_privileged(group)

    def _request_group(self, req: AccessRequest) -> Group | None:
        """The request's group as Polaris has it now (``GET /v1/groups/{id}``, never the cache: a permission
        added since the request changes who may approve it); ``None`` for a password reset.
        Raises :class:`PolarisNotFound` when the group was deleted, :class:`PolarisError` when Polaris fails."""
        if req.kind == RESET_PASSWORD or not req.group_id:
            return None
        return self.polaris.get_group(req.group_id)

    def _approvals_required(self, req: AccessRequest, group: Group | None) -> int:
        """How many approvals ``req`` needs now: never fewer than fixed at request time, and at least two
        when ``group`` (read from Polaris now) is privileged."""
        rule = self.rule_for(req.group_name if req.kind != RESET_PASSWORD else None)
        return max(req.approvals_required, privilege.approvals_needed(rule.approvals, group))

    def approver_ids(self, req: AccessRequest, memo: dict[str, list[str]] | None = None) -> set[str]:
        """Who may decide ``req`` now: the rule's user IDs, members of its Slack user groups
        (``usergroups.users.list``, read now) and the requester's manager; the environment's APPROVERS and
        ADMINS when the rule names nobody (or only a manager nobody knows)."""
        rule = self.rule_for(req.group_name if req.kind != RESET_PASSWORD else None)
        memo = {} if memo is None else memo
        ids: set[str] = set()
        for entry in rule.approvers:
            if entry == MANAGER:
                if req.manager_id:
                    ids.add(req.manager_id)
            elif entry.startswith("S"):
                if entry not in memo:
                    memo[entry] = self.slack.usergroup_members(entry)  # SlackError: refuse, never fall back
                ids.update(memo[entry])
            else:
                ids.add(entry)
        named = [a for a in rule.approvers if a != MANAGER]
        if not named and not ids:
            # Nobody named (or only a manager nobody knows): the environment's approvers decide.
            ids = set(self.settings.deciders)
        ids.discard(req.requester_id)
        return ids

    def _requester(self, user_id: str) -> SlackIdentity:
        identity = self.slack.identity(user_id, max_age=60)
        refusal = identity.refusal()
        if refusal:
            raise UsageError(refusal)
        return identity

    def _check_open_limit(self, user_id: str) -> None:
        with self.db.session() as s:
            n = s.scalar(select(func.count()).select_from(AccessRequest).where(
                AccessRequest.requester_id == user_id, AccessRequest.state.in_(OPEN_STATES)))
        if (n or 0) >= self.settings.max_open_requests:
            raise UsageError(f"You already have {n} open requests; wait for a decision or see `/polaris status`.")

    def _check_duplicate(self, kind: str, email: str, group_id: str | None) -> None:
        with self.db.session() as s:
            dup = s.scalar(select(AccessRequest).where(
                AccessRequest.state.in_(OPEN_STATES), AccessRequest.kind.in_((kind, JOIN, INVITE) if group_id else (kind,)),
                func.lower(AccessRequest.target_email) == email.lower(),
                AccessRequest.group_id == group_id if group_id else AccessRequest.group_id.is_(None)).limit(1))
        if dup is not None:
            raise UsageError(f"There is already an open request for that (request `{dup.id[:8]}`, "
                             f"{views.STATE_LABEL.get(dup.state, dup.state).lower()}).")

    def request_join(self, user_id: str, group_text: str, reason: str, *, group_id: str | None = None) -> Reply:
        """``request <group> [reason]`` (or the request form, which gives ``group_id``): the requester joins
        the group; their Polaris account is created with it if they have none."""
        identity = self._requester(user_id)
        group = self.catalog.by_id(group_id) if group_id else self.resolve_group(group_text)
        if group is None:
            raise UsageError("That group no longer exists in Polaris; `/polaris groups` lists the current ones.")
        email = identity.email.lower()  # type: ignore[union-attr]
        existing = self.polaris.find_user_by_email(email)
        if existing is not None and group.id in existing.group_ids:
            return Reply(f"You are already a member of *{views.esc(group.name)}* in Polaris.")
        self._check_open_limit(user_id)
        self._check_duplicate(JOIN, email, group.id)
        return self._submit(JOIN, identity, email=email, target_slack_id=user_id, first=identity.first_name,
                            last=identity.last_name, group=group, reason=reason)

    def request_invite(self, user_id: str, target: Target, group_text: str, reason: str) -> Reply:
        """``invite <email> <group> [reason]``: an account (or membership) for someone else."""
        identity = self._requester(user_id)
        email = self._email_for(user_id, target)
        group = self.resolve_group(group_text)
        existing = self.polaris.find_user_by_email(email)
        if existing is not None and group.id in existing.group_ids:
            return Reply(f"`{views.esc(email)}` is already a member of *{views.esc(group.name)}*.")
        self._check_open_limit(user_id)
        self._check_duplicate(INVITE, email, group.id)
        target_id = target.user_id or self.slack.user_id_for_email(email)
        first = last = ""
        if target_id:
            who = self.slack.identity(target_id)
            first, last = who.first_name, who.last_name
        return self._submit(INVITE, identity, email=email, target_slack_id=target_id, first=first, last=last,
                            group=group, reason=reason, polaris_user_id=existing.id if existing else None)

    def request_reset(self, user_id: str, target: Target) -> Reply:
        """``reset-password [email | @user]``: yours by default (matched by your Slack email)."""
        identity = self._requester(user_id)
        if target.is_self or target.user_id == user_id:
            email, target_id = identity.email.lower(), user_id  # type: ignore[union-attr]
        else:
            email = self._email_for(user_id, target)
            target_id = target.user_id or self.slack.user_id_for_email(email)
        user = self.polaris.find_user_by_email(email)
        if user is None:
            whose = "You have" if target_id == user_id else f"`{views.esc(email)}` has"
            return Reply(f"{whose} no Polaris account, so there is no password to reset. "
                         "`/polaris request <group>` asks for an account.")
        self._check_open_limit(user_id)
        self._check_duplicate(RESET_PASSWORD, email, None)
        reply = self._submit(RESET_PASSWORD, identity, email=email, target_slack_id=target_id,
                             first=user.first_name, last=user.last_name, group=None, reason="")
        if target_id and target_id != user_id:
            self.slack.dm(target_id, f"{views.mention(user_id)} asked for a password reset of your Polaris account "
                                     f"`{views.esc(email)}`. If you did not expect this, tell an admin.")
        return reply

    def _submit(self, kind: str, requester: SlackIdentity, *, email: str, target_slack_id: str | None, first: str,
                last: str, group: Group | None, reason: str, polaris_user_id: str | None = None) -> Reply:
        if target_slack_id and target_slack_id != requester.id:
            # The person it is for is checked like the requester (an invitee by email alone has no account).
            why = barred_reason(self.slack.identity(target_slack_id, max_age=60), "That person's")
            if why:
                raise UsageError(f"{why} Requests cannot be made for deactivated, guest or bot accounts.")
        rule = self.rule_for(group.name if group else None)
        privileged = self.is_privileged(group)
        approvals = privilege.approvals_needed(rule.approvals, group)
        auto = rule.auto_approve and kind == JOIN and approvals == 1 and not privileged
        reason = check_reason(clean(reason, limit=None))  # too long: refused with its length, never cut
        if rule.reason_required and len(reason) < max(1, rule.reason_min_length):
            need = f" of at least {rule.reason_min_length} characters" if rule.reason_min_length > 1 else ""
            raise UsageError(f"Requests for {'*' + group.name + '*' if group else 'this'} need a reason{need}: "
                             f"`/polaris request {group.name if group else ''} <reason>`.")
        manager = self.manager_of(requester.id) if rule.wants_manager else None
        now = self.clock()
        req = AccessRequest(
            id=str(uuid.uuid4()), kind=kind, state=PENDING, requester_id=requester.id,
            requester_email=(requester.email or "").lower() or None, target_email=email,
            target_slack_id=target_slack_id, target_first_name=clean(first, 200), target_last_name=clean(last, 200),
            group_id=group.id if group else None, group_name=group.name if group else None,
            polaris_user_id=polaris_user_id,  # an invitee who has an account: the card says membership
            reason=reason, approvals_required=approvals, manager_id=manager,
            open_key=AccessRequest.make_open_key(email, group.id if group else None),
            created_at=now, updated_at=now, expires_at=now + dt.timedelta(seconds=rule.ttl),
            post_attempts=0, card_stale=False, attempts=0)
        # The open-request limit is counted and the row inserted under one claim per requester, so requests
        # sent at the same moment (any process) cannot slip past the limit together.
        with self.claims.hold(f"requester:{requester.id}", wait=10.0) as got:
            if not got:
                raise UsageError("Another of your requests is being saved right now; try again in a moment.")
            self._check_open_limit(requester.id)
            try:
                with self.db.session() as s:
                    s.add(req)
                    self.audit.record(requester.id, "request.created", request_id=req.id, target=email, session=s,
                                      detail=f"{kind} {group.name if group else ''}".strip())
            except IntegrityError:  # the same request, at the same moment, from another click or process
                raise UsageError("There is already an open request for that; see `/polaris status`.") from None
        posted = self.post_card(req.id)
        what = views.kind_phrase(req)
        if auto:
            self.auto_approve(req.id)
            return Reply(f":white_check_mark: Your request for {what} is approved by policy and is being applied "
                         f"(request `{req.id[:8]}`). Approvers are informed in <#{self.settings.approval_channel}>.")
        if posted:
            return Reply(f":inbox_tray: Your request for {what} went to the approvers in <#{self.settings.approval_channel}>. "
                         f"I'll message you when it is decided (request `{req.id[:8]}`).")
        self._tell_unposted(req.id)
        return Reply(f":warning: Your request for {what} is saved (request `{req.id[:8]}`), but I could not post it "
                     "to the approvers yet. I will keep trying and message you.")

    # ------------------------------------------------------------------------------- cards
    def _card(self, req: AccessRequest, note: str | None = None) -> tuple[str, list]:
        group = None
        if req.group_id:
            try:
                group = self.catalog.by_id(req.group_id)
            except PolarisError:
                group = None
        with self.db.session() as s:
            approvals = list(s.scalars(select(Approval.approver_id).where(Approval.request_id == req.id)
                                       .order_by(Approval.id)))
        rule = self.rule_for(req.group_name if req.kind != RESET_PASSWORD else None)
        return views.approval_card(req, group=group, approvals=approvals, note=note, manager_wanted=rule.wants_manager)

    def post_card(self, request_id: str) -> bool:
        """Post the approval card of a request that has none yet (and the manager's copy). True when it is
        posted (by this call or another). The command and the worker may both try: a claim makes exactly
        one post it; a failure is left to the delivery ledger (backoff, or a fallback for good)."""
        self._sync_cards(request_id)
        req = self.get(request_id)
        return bool(req and req.approval_ts)

    def _sync_cards(self, request_id: str, note: str | None = None, *, wait: float = 2.0) -> bool:
        """Make the approval card and the manager's copy show the request as it is now: post what was never
        posted, ``chat.update`` only what changed (the ledger's ``content_hash``). Under the ``card:<id>``
        claim, so one process at a time posts or edits a request's cards; a caller that cannot get it records
        what the card should show and the holder or the worker shows it. True when the channel card is
        current."""
        with self.claims.hold(f"card:{request_id}", wait=wait) as got:
            if not got:
                req = self.get(request_id)
                if req is not None:
                    for recipient, manager in self._card_targets(req):
                        text, blocks = self._card_for(req, recipient, note)
                        self.deliveries.want(req.id, CARD, recipient, "card", content=content_hash(text, blocks))
                return False
            current = False
            for _ in range(3):  # again when the request changed while we were sending
                req = self.get(request_id)
                if req is None:
                    return False
                sent = False
                for recipient, manager in self._card_targets(req):
                    status, did_send = self._sync_card(req, recipient, manager, note)
                    sent = sent or did_send
                    if not manager:
                        current = status == ledger.DELIVERED
                if not sent:
                    break
            return current

    def _card_targets(self, req: AccessRequest) -> list[tuple[str, bool]]:
        """(recipient, is the manager's copy): the approval channel, and the manager when there is one."""
        targets = [(req.approval_channel or self.settings.approval_channel, False)]
        if req.manager_id:
            targets.append((req.manager_id, True))
        return targets

    def _card_for(self, req: AccessRequest, recipient: str, note: str | None = None) -> tuple[str, list]:
        replaced = self.deliveries.find(req.id, CARD, recipient, "repost")
        if replaced is not None:
            extra = (f":information_source: This card replaces an earlier one I could no longer update "
                     f"(Slack: `{views.esc(replaced.last_error or 'error')}`).")
            note = f"{note}\n{extra}" if note else extra
        return self._card(req, note)

    def _sync_card(self, req: AccessRequest, recipient: str, manager: bool, note: str | None) -> tuple[str, bool]:
        """One card (or the manager's copy) of ``req``: (ledger status, whether a Slack call was made)."""
        text, blocks = self._card_for(req, recipient, note)
        row = self.deliveries.want(req.id, CARD, recipient, "card", content=content_hash(text, blocks))
        if row.status != ledger.PENDING:
            return row.status, False
        ts = req.manager_dm_ts if manager else req.approval_ts
        if ts is None and (req.state == EXPIRED or (manager and req.state != PENDING)) \
                and self.deliveries.find(req.id, CARD, recipient, "repost") is None:
            self.deliveries.settle(row, ledger.SUPERSEDED)  # never shown, and nothing left to decide
            return ledger.SUPERSEDED, False
        what = f"{'manager copy' if manager else 'approval card'} {'update' if ts else 'post'} to {recipient}"

        def send():
            if ts:
                channel = req.manager_dm_channel if manager else req.approval_channel
                self.slack.update(channel, ts, text, blocks, request_id=req.id)
            elif manager:
                channel, mts = self.slack.dm_card(recipient, text, blocks, request_id=req.id)
                self._set(req.id, manager_dm_channel=channel, manager_dm_ts=mts)
            else:
                posted = self.slack.post(recipient, text, blocks, request_id=req.id, action="notify.card")
                with self.db.session() as s:
                    s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.approval_ts.is_(None))
                              .values(approval_channel=recipient, approval_ts=posted,
                                      post_attempts=AccessRequest.post_attempts + 1))

        attempt = self.deliveries.run(row, send, what=what)
        if attempt.outcome == "skipped":
            return row.status, False
        if not ts and not manager and not attempt.delivered:
            log.warning("approval card for %s not posted: %s", req.id, attempt.error)
            self._set(req.id, post_attempts=AccessRequest.post_attempts + 1)
        if attempt.delivered and not ts and not manager and row.attempts > 0:
            # Posted by a later attempt: the requester was told it was not posted yet.
            self._dm(req.id, req.requester_id, "card_posted", views.requester_update(self.get(req.id)))
        if attempt.outcome == "gave_up":
            self._card_gave_up(req, recipient, manager, bool(ts), attempt.error or "error")
        return (ledger.DELIVERED if attempt.delivered else ledger.FAILED if attempt.outcome == "gave_up"
                else ledger.PENDING), True

    def _card_gave_up(self, req: AccessRequest, recipient: str, manager: bool, was_posted: bool, error: str) -> None:
        """The fallbacks when a card cannot be delivered: an update that is impossible posts a fresh card once
        (the old one is forgotten); a post that is impossible tells the requester and ``ADMINS`` by DM (the
        manager's copy: audited only; the channel card still carries the decision)."""
        if was_posted and self.deliveries.find(req.id, CARD, recipient, "repost") is None:
            marker = self.deliveries.want(req.id, CARD, recipient, "repost")
            self.deliveries.settle(marker, ledger.DELIVERED, error)
            self._set(req.id, **({"manager_dm_ts": None, "manager_dm_channel": None} if manager else {"approval_ts": None}))
            self.deliveries.reopen(self.deliveries.find(req.id, CARD, recipient, "card"))
            self.audit.record("bot", "notify.fallback", request_id=req.id, target=recipient,
                              detail=f"{'manager copy' if manager else 'approval card'} could not be updated "
                                     f"({error}); posting a fresh one")
            return
        if manager:
            return
        what = views.kind_phrase(req)
        if req.state != PENDING:
            # Decided already: the requester hears of the decision by its own DM; only the card is lost.
            self._tell_admins(req, f"card:{recipient}", exclude=None,
                              text=(f":warning: The approval card for request `{req.id[:8]}` "
                                    f"({views.mention(req.requester_id)} asks for {what}) could not be updated or "
                                    f"posted again in <#{recipient}>: Slack said `{views.esc(error)}`. The request is "
                                    f"{views.STATE_LABEL.get(req.state, req.state).lower()}; the card in the channel "
                                    "may show an older state. Check that the bot is in that channel."),
                              why=f"approval card of a decided request not updated ({error})")
            return
        self._dm(req.id, req.requester_id, "card_failed",
                 f":warning: I could not post your request for {what} to the approvers: the approval card could "
                 f"not be posted in <#{recipient}> (Slack: `{views.esc(error)}`). The admins have been told "
                 f"(request `{req.id[:8]}`).")
        self._tell_admins(req, f"card:{recipient}", exclude=None,
                          text=(f":warning: I could not post the approval card for request `{req.id[:8]}` "
                                f"({views.mention(req.requester_id)} asks for {what}) in <#{recipient}>: Slack said "
                                f"`{views.esc(error)}`. Check that the bot is in that channel and that "
                                "APPROVAL_CHANNEL is right; the request waits until it expires."),
                          why=f"approval card not posted ({error})")

    def auto_approve(self, request_id: str) -> None:
        """Approve a request its policy rule auto-approves: recorded, announced on the card, applied."""
        now = self.clock()
        with self.db.session() as s:
            changed = s.execute(update(AccessRequest).where(AccessRequest.id == request_id,
                                                            AccessRequest.state == PENDING)
                                .values(state=APPROVED, decided_by=views.POLICY_ACTOR, decided_at=now,
                                        updated_at=now)).rowcount
            if changed:
                self.audit.record(views.POLICY_ACTOR, "decision.auto_approve", request_id=request_id, session=s)
        if changed:
            self.refresh_card(request_id)
            self.wake()

    def _tell_unposted(self, request_id: str) -> None:
        """The card could not be posted at once: tell the requester it is saved and will be posted (unless
        the post failed for good, which the fallback already told them)."""
        req = self.get(request_id)
        row = self.deliveries.find(request_id, CARD, req.approval_channel or self.settings.approval_channel, "card") \
            if req is not None else None
        if req is not None and not req.approval_ts and (row is None or row.status == ledger.PENDING):
            self._dm(req.id, req.requester_id, "unposted", views.requester_update(req))

    def refresh_card(self, request_id: str, note: str | None = None) -> bool:
        """Rewrite the approval card (and the manager's copy) from the request's current state
        (``chat.update``), only when what it shows changed. A failure is left to the delivery ledger (retried
        with backoff; an impossible update posts a fresh card); the decision stands either way. True when the
        channel card is current."""
        return self._sync_cards(request_id, note)

    def notify_requester(self, req: AccessRequest) -> bool:
        """DM the requester the request's current state (and the person it is for, when it ends), once per
        state (and per Retry), through the delivery ledger: a DM Slack did not take is retried with backoff,
        one it refuses for good is not, and ``ADMINS`` are told instead. True when the requester got it."""
        key = req.state if not req.retries else f"{req.state}#{req.retries}"
        approvers: list[str] = []
        if req.state == APPROVED and req.decided_by != views.POLICY_ACTOR:
            with self.db.session() as s:
                approvers = list(s.scalars(select(Approval.approver_id).where(Approval.request_id == req.id)
                                           .order_by(Approval.id)))
        text = views.requester_update(req, approvers)
        ok = self._dm(req.id, req.requester_id, key, text, state=req.state)
        if req.target_slack_id and req.target_slack_id != req.requester_id and req.state in (APPLIED, DENIED):
            self._dm(req.id, req.target_slack_id, key, f"For your information: {text}")
        return ok

    def _dm(self, request_id: str, recipient: str, key: str, text: str, *, state: str | None = None) -> bool:
        """Owe ``recipient`` the DM ``text`` about a request, once per ``key``, and try it now (an older DM to
        them about the request still pending is superseded). ``state``: the request state it tells the
        requester. True when delivered (now or before)."""
        row = self.deliveries.want(request_id, DM, recipient, key, text=text, state=state, supersede=True)
        return self._send_dm_row(row)

    def _send_dm_row(self, row) -> bool:
        """One attempt at a DM (or admin notice) row of the ledger, if it is pending and due; settles it."""
        if row.status != ledger.PENDING:
            return row.status == ledger.DELIVERED
        blocked = self.deliveries.unreachable(row.request_id, row.recipient)
        if blocked:  # this request already found them unable to get any DM: do not ask Slack again
            self.deliveries.settle(row, ledger.FAILED, blocked)
            self.audit.record("bot", "notify.gave_up", request_id=row.request_id, target=row.recipient,
                              outcome="error", detail=f"{row.kind} to {row.recipient}: not sent, {blocked} earlier")
            self._dm_settled(row, False, blocked)
            return False
        attempt = self.deliveries.run(row, lambda: self.slack.send_dm(row.recipient, row.text or "",
                                                                      request_id=row.request_id),
                                      what=f"{'notice' if row.kind == RELAY else 'DM'} to {row.recipient}")
        if attempt.outcome in ("delivered", "gave_up"):
            self._dm_settled(row, attempt.delivered, attempt.error)
        return attempt.delivered

    def _dm_settled(self, row, delivered: bool, error: str | None) -> None:
        """A DM is delivered or given up: record the state the requester's notification settled, and tell
        ``ADMINS`` (once per request) when the requester cannot be reached."""
        req = self.get(row.request_id)
        if req is None or row.kind != DM or row.recipient != req.requester_id:
            return
        if row.state:
            with self.db.session() as s:
                s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.state == row.state)
                          .values(notified_state=row.state))
        if not delivered:
            self._tell_admins(req, f"dm:{row.recipient}", exclude=row.recipient,
                              text=(f":warning: I could not send {views.mention(row.recipient)} a DM about request "
                                    f"`{req.id[:8]}` (Slack: `{views.esc(error or 'error')}`). It said: {row.text}"),
                              why=f"requester DM not delivered ({error})")

    def _tell_admins(self, req: AccessRequest, key: str, *, text: str, exclude: str | None, why: str) -> None:
        """Fallback: a notice to every ``ADMINS`` member (but ``exclude``), once per request and ``key``;
        audited as ``notify.fallback``."""
        admins = sorted(a for a in self.settings.admins if a != exclude)
        fresh = [a for a in admins if self.deliveries.find(req.id, RELAY, a, key) is None]
        if admins and not fresh:
            return  # told before
        self.audit.record("bot", "notify.fallback", request_id=req.id, outcome="ok" if admins else "error",
                          detail=f"{why}; " + (f"telling ADMINS {', '.join(admins)}" if admins else
                                               "no other admin to tell"))
        for admin in fresh:
            self._send_dm_row(self.deliveries.want(req.id, RELAY, admin, key, text=text))

    # ------------------------------------------------------------------------------- decisions
    def get(self, request_id: str) -> AccessRequest | None:
        with self.db.session() as s:
            return s.get(AccessRequest, request_id)

    def _set(self, request_id: str, **values) -> None:
        with self.db.session() as s:
            s.execute(update(AccessRequest).where(AccessRequest.id == request_id).values(**values))

    def _refuse(self, actor: str, request_id: str | None, why: str, detail: str) -> str:
        self.audit.record(actor, "decision.refused", request_id=request_id, outcome="refused", detail=detail)
        return why

    def authority(self, actor_id: str, req: AccessRequest, *, approving: bool = True,
                  group: Group | None = None) -> str | None:
        """Why ``actor_id`` may not decide ``req`` now, or ``None``. Checked at click time: an approver or
        admin per configuration, never the requester or the person it is for, an active full member of the
        workspace (not a guest, bot or deactivated account), and, for a privileged group (Organization
        Admin or an organization-level administration permission, :mod:`bot.privilege`), a member of
        Organization Admin in Polaris themselves. ``group``: the request's group as just read from Polaris
        (read here when not given). Raises :class:`PolarisError` or :class:`SlackError` when a check cannot
        be made."""
        if actor_id == req.requester_id:
            return "You cannot decide your own request."
        if req.target_slack_id and actor_id == req.target_slack_id:
            return "You cannot decide a request that is for you."
        if actor_id not in self.approver_ids(req):
            return "Only approvers can decide access requests."
        identity = self.slack.identity(actor_id)
        if identity.barred:
            return "Your Slack account cannot decide access requests (deactivated, guest or bot)."
        if approving:
            requester = self.slack.identity(req.requester_id)
            if requester.barred:
                return ("The requester's Slack account is now deactivated or a guest account; this request can "
                        "only be denied or left to expire.")
            if req.target_slack_id and req.target_slack_id != req.requester_id:
                why = barred_reason(self.slack.identity(req.target_slack_id), "The Slack account of the person it is for")
                if why:
                    return f"{why[:-1]} now; this request can only be denied or left to expire."
        if group is None:
            group = self._request_group(req)
        if self.is_privileged(group) or (req.group_name or "").lower() == ORG_ADMIN.lower():
            if not identity.email:
                return f"Only {ORG_ADMIN} members in Polaris can approve this, and your Slack profile has no email."
            admins = self.catalog.by_name(ORG_ADMIN)
            with audit_context(actor_id, req.id):
                mine = self.polaris.find_user_by_email(identity.email)
            if admins is None or mine is None or not mine.enabled or admins.id not in mine.group_ids:
                return f"Only members of {ORG_ADMIN} in Polaris can approve access that administers users."
        return None

    def decide(self, request_id: str, actor_id: str, approve: bool) -> str | None:
        """Record ``actor_id``'s decision on a pending request. Returns a message for the clicker (shown
        ephemerally) or ``None`` when the card update says it all. Never raises for bad clicks."""
        verb = "approve" if approve else "deny"
        req = self.get(request_id)
        if req is None:
            return self._refuse(actor_id, None, "That request no longer exists.", f"unknown request {request_id[:40]}")
        if req.state != PENDING:
            return self._refuse(actor_id, req.id, self._already(req), f"{verb} on {req.state} request")
        now = self.clock()
        if req.expires_at <= now:
            self.expire(req.id)
            return self._refuse(actor_id, req.id, "This request has expired; the requester can ask again.",
                                f"{verb} on expired request")
        try:
            try:
                group = self._request_group(req)  # from Polaris, not the cache: it decides who may approve
            except PolarisNotFound:
                if approve:
                    return self._refuse(actor_id, req.id, "The group of this request no longer exists in Polaris; "
                                        "it can only be denied or left to expire.", "approve: group deleted")
                group = Group(id=req.group_id or "", name=req.group_name or "")
            required = self._approvals_required(req, group)
            why = self.authority(actor_id, req, approving=approve, group=group)
        except (PolarisError, SlackError) as e:
            log.warning("authority check for %s failed: %s", actor_id, e)
            why = "I could not check your authority right now (Polaris or Slack did not answer); try again."
        if why:
            return self._refuse(actor_id, req.id, why, f"{verb}: {why}")
        stale: list[str] = []
        if approve and required > 1:
            # Earlier approvals count only if their approvers still have the authority now.
            with self.db.session() as s:
                prior = list(s.scalars(select(Approval.approver_id).where(Approval.request_id == req.id)))
            try:
                stale = [a for a in prior if a != actor_id and self.authority(a, req, group=group) is not None]
            except (PolarisError, SlackError):
                return self._refuse(actor_id, req.id, "I could not re-check the earlier approvals right now; try again.",
                                    "approve: earlier approvals not re-checkable")
        message: str | None = None
        partial: str | None = None
        with self.db.session() as s:
            # Take the row (a write lock on both databases) and check it is still pending and not expired.
            touched = s.execute(update(AccessRequest).where(
                AccessRequest.id == req.id, AccessRequest.state == PENDING, AccessRequest.expires_at > now)
                .values(updated_at=now)).rowcount
            if not touched:
                s.rollback()
                current = self.get(req.id)
                return self._refuse(actor_id, req.id, self._already(current), f"{verb} lost the race")
            if not approve:
                s.execute(update(AccessRequest).where(AccessRequest.id == req.id)
                          .values(state=DENIED, decided_by=actor_id, decided_at=now, updated_at=now, open_key=None))
                self.audit.record(actor_id, "decision.deny", request_id=req.id, target=req.target_email, session=s)
            else:
                already = s.scalar(select(Approval.id).where(Approval.request_id == req.id,
                                                             Approval.approver_id == actor_id))
                if already is not None:
                    s.rollback()
                    return self._refuse(actor_id, req.id, "You already approved this request; it needs another approver.",
                                        "second approval by the same person")
                for gone in stale:
                    s.execute(delete(Approval).where(Approval.request_id == req.id, Approval.approver_id == gone))
                    self.audit.record(gone, "approval.revoked", request_id=req.id, session=s, outcome="refused",
                                      detail="approver no longer has the authority")
                if required != req.approvals_required:
                    s.execute(update(AccessRequest).where(AccessRequest.id == req.id)
                              .values(approvals_required=required))
                    self.audit.record("bot", "request.approvals_raised", request_id=req.id, session=s,
                                      detail=f"{req.approvals_required} -> {required}: the group now grants "
                                             f"{', '.join(privilege.privileged_grants(group)) or ORG_ADMIN}")
                s.add(Approval(request_id=req.id, approver_id=actor_id, created_at=now))
                s.flush()
                count = s.scalar(select(func.count()).select_from(Approval).where(Approval.request_id == req.id))
                if count >= required:
                    s.execute(update(AccessRequest).where(AccessRequest.id == req.id)
                              .values(state=APPROVED, decided_by=actor_id, decided_at=now, updated_at=now,
                                      next_attempt_at=None))
                    self.audit.record(actor_id, "decision.approve", request_id=req.id, target=req.target_email, session=s)
                else:
                    self.audit.record(actor_id, "decision.approve", request_id=req.id, target=req.target_email,
                                      session=s, outcome="partial", detail=f"approval {count} of {required}")
                    message = (f"Your approval is recorded ({count} of {required}); "
                               "another approver must approve too.")
                    partial = (f"{views.mention(actor_id)} approved your request for {views.kind_phrase(req)} "
                               f"({count} of {required} approvals; request `{req.id[:8]}`).")
        self.refresh_card(req.id)
        req = self.get(req.id)
        if req.state != PENDING:
            self.notify_requester(req)
        elif partial:
            self._dm(req.id, req.requester_id, f"approval:{actor_id}", partial)
        if req.state == APPROVED:
            self.wake()
        return message

    def _already(self, req: AccessRequest | None) -> str:
        if req is None:
            return "That request no longer exists."
        if req.state == EXPIRED:
            return "This request has expired; the requester can ask again."
        who = views.mention(req.decided_by)
        if req.state == DENIED:
            return f"Already denied by {who}."
        if req.state in (APPROVED, APPLIED, FAILED):
            return f"Already approved by {who} ({views.STATE_LABEL[req.state].lower()})."
        return "This request is still pending."

    def retry(self, request_id: str, actor_id: str) -> str | None:
        """Put a failed request back to approved so the worker applies it again (approvers and admins)."""
        req = self.get(request_id)
        if req is None:
            return self._refuse(actor_id, None, "That request no longer exists.", "retry unknown request")
        if actor_id in (req.requester_id, req.target_slack_id):  # the authority rule, in words that fit a Retry
            return self._refuse(actor_id, req.id, self._who_can_retry(req), "retry by the requester or the person it is for")
        try:
            why = self.authority(actor_id, req)
        except PolarisNotFound:  # the group was deleted in Polaris: no Retry can apply it (attack review)
            why = ("The group of this request no longer exists in Polaris, so it cannot be applied; the requester "
                   "can ask for a current group (`/polaris groups` lists them).")
        except (PolarisError, SlackError):
            why = "I could not check your authority right now; try again."
        if why:
            return self._refuse(actor_id, req.id, why, f"retry: {why}")
        try:
            with self.db.session() as s:
                changed = s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.state == FAILED)
                                    .values(state=APPROVED, attempts=0, next_attempt_at=None, updated_at=self.clock(),
                                            retries=AccessRequest.retries + 1,
                                            outcome="Retry requested by an approver",
                                            open_key=AccessRequest.make_open_key(req.target_email, req.group_id))).rowcount
                if not changed:
                    s.rollback()
                    return self._refuse(actor_id, req.id, f"Only a failed request can be retried; this one is "
                                        f"{views.STATE_LABEL.get(req.state, req.state).lower()}.", "retry on non-failed")
                self.audit.record(actor_id, "decision.retry", request_id=req.id, target=req.target_email, session=s)
        except IntegrityError:
            return self._refuse(actor_id, req.id, "A newer request for the same access is already open; decide that one.",
                                "retry: newer open request")
        self.refresh_card(req.id)
        self.wake()
        return "Retrying it now."

    def _who_can_retry(self, req: AccessRequest) -> str:
        """The answer for a requester (or the person a request is for) pressing Retry: who can."""
        try:
            who = sorted(self.approver_ids(req) - {req.target_slack_id})
        except SlackError:
            who = []
        if len(who) > 5:
            named = f" ({', '.join(views.mention(u) for u in who[:5])} and {len(who) - 5} more)"
        else:
            named = f" ({views.names(who)})" if who else ""
        return (f"Only an approver can retry this request{named}; the card in <#{self.settings.approval_channel}> "
                "has the Retry button for them.")

    def expire(self, request_id: str) -> bool:
        """Move a pending request past its TTL to expired (compare-and-set), update the card, tell the requester."""
        now = self.clock()
        with self.db.session() as s:
            changed = s.execute(update(AccessRequest).where(
                AccessRequest.id == request_id, AccessRequest.state == PENDING, AccessRequest.expires_at <= now)
                .values(state=EXPIRED, updated_at=now, open_key=None)).rowcount
            if changed:
                self.audit.record("bot", "request.expired", request_id=request_id, session=s)
        if changed:
            self.refresh_card(request_id)
            self.notify_requester(self.get(request_id))
        return bool(changed)

    # ------------------------------------------------------------------------------- worker
    def run_due(self, *, limit: int = 20, stop: threading.Event | None = None) -> int:
        """One worker pass: expire overdue requests, make the Slack deliveries that are due (card posts and
        updates, DMs: :mod:`bot.deliveries`), post cards and tell requesters where nothing was ever tried (a
        crash in between), prune old ``slack_events``, apply due approved requests. Safe to run in any number
        of processes at once. Returns how many it applied."""
        now = self.clock()
        self._prune_events(now)
        card_owed = exists().where(Delivery.request_id == AccessRequest.id, Delivery.kind == CARD)
        dm_owed = exists().where(Delivery.request_id == AccessRequest.id, Delivery.kind == DM,
                                 Delivery.recipient == AccessRequest.requester_id,
                                 Delivery.state == AccessRequest.state)
        with self.db.session() as s:
            overdue = list(s.scalars(select(AccessRequest.id).where(
                AccessRequest.state == PENDING, AccessRequest.expires_at <= now).limit(limit)))
            unposted = list(s.scalars(select(AccessRequest.id).where(
                AccessRequest.state == PENDING, AccessRequest.approval_ts.is_(None),
                AccessRequest.created_at <= now - dt.timedelta(seconds=30), ~card_owed).limit(limit)))
            untold = list(s.scalars(select(AccessRequest.id).where(
                AccessRequest.state.in_((APPROVED, APPLIED, FAILED, DENIED, EXPIRED)),
                AccessRequest.updated_at.between(now - dt.timedelta(days=1), now - dt.timedelta(seconds=20)),
                or_(AccessRequest.notified_state.is_(None), AccessRequest.notified_state != AccessRequest.state),
                ~dm_owed).limit(limit)))
            due = list(s.scalars(select(AccessRequest.id).where(
                AccessRequest.state == APPROVED,
                or_(AccessRequest.next_attempt_at.is_(None), AccessRequest.next_attempt_at <= now))
                .order_by(AccessRequest.decided_at).limit(limit)))
        for rid in overdue:
            self._safely(self.expire, rid)
        for rid in unposted:
            self._safely(self.post_card, rid)
        for row in self.deliveries.due(limit):
            if stop is not None and stop.is_set():
                break
            self._safely(self._deliver_due, row)
        for rid in untold:
            req = self.get(rid)
            if req is not None and req.notified_state != req.state:
                self._safely(self.notify_requester, req)
        applied = 0
        for rid in due:
            if stop is not None and stop.is_set():
                break
            if self._safely(self.apply, rid):
                applied += 1
        return applied

    def _deliver_due(self, row) -> None:
        """The worker's attempt at one due ledger row: a card is brought up to date, a DM sent again."""
        if row.kind == CARD:
            self._sync_cards(row.request_id, wait=0.0)
        else:
            self._send_dm_row(row)

    def _prune_events(self, now: dt.datetime) -> None:
        """Delete ``slack_events`` rows older than a day (Slack retries an event within minutes), at most
        once a minute per process and 1,000 rows a time (index ``ix_slack_events_received_at``)."""
        if self._pruned_at is not None and abs((now - self._pruned_at).total_seconds()) < 60:
            return
        self._pruned_at = now
        old = select(SlackEvent.event_id).where(SlackEvent.received_at < now - dt.timedelta(days=1)).limit(1000)
        try:
            with self.db.session() as s:
                s.execute(delete(SlackEvent).where(SlackEvent.event_id.in_(old)))
        except Exception:
            log.exception("pruning slack_events failed")

    def _safely(self, fn, *args):
        try:
            return fn(*args)
        except Exception:
            log.exception("worker step %s failed for %s", getattr(fn, "__name__", fn), args)
            return None

    def apply(self, request_id: str) -> bool:
        """Apply one approved request in Polaris if this worker can claim it. True when it ended applied.

        Idempotent: safe to run again after a crash at any point."""
        target = self.get(request_id)
        if target is None:
            return False
        # One claim per request, then one per Polaris user: two requests never change the same user at once
        # (a password reset's GET-change-PUT would otherwise erase a membership added in between). The user
        # claim is only tried by the holder of the request claim, so a worker that lost the request cannot
        # block the one that won it.
        with contextlib.ExitStack() as claims:
            if not claims.enter_context(self.claims.hold(request_id)):
                return False
            if not claims.enter_context(self.claims.hold(f"user:{target.target_email.lower()}")):
                return False
            req = self.get(request_id)  # fresh, under the claim
            now = self.clock()
            if req is None or req.state != APPROVED or (req.next_attempt_at and req.next_attempt_at > now):
                return False
            settled = self._write_settled_at(req)
            if settled is not None and settled > now:
                # An earlier attempt (maybe a process that died) sent a write and never heard whether it
                # landed; it may still land. Nothing is sent, nor looked for, before its time budget is over.
                self._set(req.id, next_attempt_at=settled, claimed_by=None)
                self.audit.record("bot", "apply.wait_for_write", request_id=req.id,
                                  detail=f"an earlier write's answer was lost; looking in Polaris at {settled:%H:%M:%S} UTC")
                return False
            self._set(req.id, claimed_by=self.worker_name, attempts=req.attempts + 1, updated_at=now)
            self.audit.record("bot", "apply.start", request_id=req.id, target=req.target_email,
                              detail=f"attempt {req.attempts + 1}")
            try:
                with audit_context("bot", req.id):
                    if not self._fit_to_apply(req):
                        return False
                    outcome, polaris_user_id = self._apply(req)
            except (PolarisError, SlackError) as e:
                return self._apply_failed(req, e)
            except _NotConfirmed as e:
                self._apply_refused(req, str(e), action="apply.failed", outcome="error", write_started_at=None)
                return False
            except Exception as e:  # a bug: record it, do not lose the request
                log.exception("apply of %s crashed", req.id)
                return self._apply_failed(req, PolarisError(None, "InternalError", type(e).__name__))
            with self.db.session() as s:
                s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.state == APPROVED)
                          .values(state=APPLIED, outcome=outcome, polaris_user_id=polaris_user_id,
                                  applied_at=self.clock(), updated_at=self.clock(), claimed_by=None, open_key=None))
                self.audit.record("bot", "apply.done", request_id=req.id, target=req.target_email, detail=outcome,
                                  session=s)
        if req.kind != RESET_PASSWORD:
            self.catalog.invalidate()  # a membership changed: `groups` member counts are read again
        self.refresh_card(req.id)
        self.notify_requester(self.get(req.id))
        return True

    def _fit_to_apply(self, req: AccessRequest) -> bool:
        """The checks made just before a request is applied, on what Slack and Polaris say now (no cache).

        - The requester and the person it is for (when they have a Slack account) are re-read with
          ``users.info``: a deactivated, guest or bot account ends the request failed (:meth:`_apply_refused`).
        - The group is re-read (``GET /v1/groups/{id}``): when it is privileged now (:mod:`bot.privilege`) and
          the request lacks the approvals that needs (at least two, each by an Organization Admin member in
          Polaris, checked now), it goes back to pending for them (:meth:`_hold_for_approvals`).

        True when it may be applied. Raises :class:`PolarisError` / :class:`SlackError` when a check cannot be
        made (the apply is retried later)."""
        people = [(req.requester_id, "The requester's")]
        if req.target_slack_id and req.target_slack_id != req.requester_id:
            people.append((req.target_slack_id, "The Slack account of the person it is for"))
        for slack_id, whose in people:
            why = barred_reason(self.slack.identity(slack_id), whose)  # max_age 0: read now
            if why:
                self._apply_refused(req, f"{why} Nothing was changed in Polaris: access is not given to "
                                         "deactivated, guest or bot accounts.")
                return False
        group = self._request_group(req)
        if not self.is_privileged(group):
            return True
        required = self._approvals_required(req, group)
        with self.db.session() as s:
            approvers = list(s.scalars(select(Approval.approver_id).where(Approval.request_id == req.id)
                                       .order_by(Approval.id)))
        valid = [a for a in approvers if self.authority(a, req, approving=False, group=group) is None]
        if len(valid) >= required:
            return True
        self._hold_for_approvals(req, group, required, valid, [a for a in approvers if a not in valid])
        return False

    def _apply_refused(self, req: AccessRequest, reason: str, *, action: str = "apply.refused",
                       outcome: str = "refused", **values) -> None:
        """End an approved request failed for ``reason`` (a sentence for people), without retrying: audited
        (``action``, ``outcome``), the card updated, the requester told. ``values``: more columns to set."""
        with self.db.session() as s:
            s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.state == APPROVED)
                      .values(state=FAILED, outcome=reason, updated_at=self.clock(), claimed_by=None, open_key=None,
                              **values))
            self.audit.record("bot", action, request_id=req.id, target=req.target_email, outcome=outcome,
                              detail=reason, session=s)
        self.refresh_card(req.id)
        self.notify_requester(self.get(req.id))

    def _hold_for_approvals(self, req: AccessRequest, group: Group, required: int, valid: list[str],
                            revoked: list[str]) -> None:
        """Send an approved request whose group became privileged back to pending, not applied: it now needs
        ``required`` approvals by Organization Admin members; the approvals of ``revoked`` approvers no longer
        count. Audited (``apply.held``), the card shows the buttons again, the requester is told."""
        now = self.clock()
        grants = ", ".join(privilege.privileged_grants(group)) or ORG_ADMIN
        rule = self.rule_for(req.group_name)
        expires = max(req.expires_at, now + dt.timedelta(seconds=rule.ttl))
        with self.db.session() as s:
            changed = s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.state == APPROVED)
                                .values(state=PENDING, approvals_required=required, decided_by=None, decided_at=None,
                                        next_attempt_at=None, claimed_by=None, attempts=0, outcome=None,
                                        updated_at=now, expires_at=expires)).rowcount
            if not changed:
                return
            for gone in revoked:
                s.execute(delete(Approval).where(Approval.request_id == req.id, Approval.approver_id == gone))
                self.audit.record(gone, "approval.revoked", request_id=req.id, session=s, outcome="refused",
                                  detail=f"not an {ORG_ADMIN} member, and the group now grants {grants}")
            self.audit.record("bot", "apply.held", request_id=req.id, target=req.target_email, outcome="refused",
                              session=s, detail=f"group now privileged ({grants}); needs {required} approvals by "
                                                f"{ORG_ADMIN} members, has {len(valid)}")
        self.refresh_card(req.id)
        self.slack.dm(req.requester_id,
                      f"Your request for {views.kind_phrase(req)} was not applied yet: *{views.esc(group.name)}* now "
                      f"grants {views.esc(grants)} in Polaris, so it needs {required} approvals by {ORG_ADMIN} "
                      f"members ({len(valid)} so far). It is back with the approvers (request `{req.id[:8]}`).",
                      request_id=req.id)

    def _apply_failed(self, req: AccessRequest, error: PolarisError | SlackError) -> bool:
        attempts = req.attempts + 1
        now = self.clock()
        if isinstance(error, SlackError):  # a check before applying could not be made: retried like Polaris
            error = PolarisUnavailable(None, "SlackUnavailable", f"Slack did not answer ({error.error})")
        plain = error.plain()
        unknown = getattr(error, "outcome_unknown", False)
        # A write whose answer was lost may have landed: even on the last attempt, one more attempt looks (after
        # the write has landed or never will) before the request is called failed (attack review).
        limit = self.settings.polaris_max_attempts + (1 if unknown else 0)
        if error.transient and attempts < limit:
            delay = min(APPLY_BACKOFF_MAX, APPLY_BACKOFF_BASE * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
            delay = max(delay, min(error.retry_after or 0.0, 3600.0))  # Polaris asked us to wait longer
            settled = self._write_settled_at(self.get(req.id) or req) if unknown else None
            if settled is not None:  # a write whose answer was lost: not before it has landed or never will
                delay = max(delay, (settled - now).total_seconds())
            self._set(req.id, next_attempt_at=now + dt.timedelta(seconds=delay), claimed_by=None,
                      outcome=redact(f"{plain}; will retry (attempt {attempts} of {self.settings.polaris_max_attempts})"))
            self.audit.record("bot", "apply.retry_later", request_id=req.id, outcome="error",
                              detail=f"{error.code} {error.status}; next in {delay:.0f}s")
            self.refresh_card(req.id)
            return False
        if isinstance(error, PolarisError) and error.status in (401, 403):
            log.error("Polaris refused the bot's API key (%s %s): check POLARIS_API_KEY and its AdministerUsers "
                      "permission", error.status, error.code)
        with self.db.session() as s:
            s.execute(update(AccessRequest).where(AccessRequest.id == req.id, AccessRequest.state == APPROVED)
                      .values(state=FAILED, outcome=redact(plain), updated_at=now, claimed_by=None, open_key=None))
            self.audit.record("bot", "apply.failed", request_id=req.id, target=req.target_email, outcome="error",
                              detail=f"{error.code} {error.status}: {error.message}", session=s)
        self.refresh_card(req.id)
        self.notify_requester(self.get(req.id))
        return False

    def _apply(self, req: AccessRequest) -> tuple[str, str]:
        """The Polaris side of an approved request; returns (outcome sentence, Polaris user ID)."""
        if req.kind == RESET_PASSWORD:
            return self._apply_reset(req)
        group_label = req.group_name or req.group_id
        user = self.polaris.find_user_by_email(req.target_email)
        if user is None:
            # Committed before the POST: a resumed apply (any process) waits out its time budget and looks the
            # user up before creating it again (see apply).
            self._set(req.id, write_started_at=self.clock(), write_answered_at=None)
            try:
                user = self.polaris.create_user(req.target_email, first_name=req.target_first_name,
                                                last_name=req.target_last_name, group_ids=[req.group_id])
                self._set(req.id, write_answered_at=self.clock())
                return f"Created Polaris user {req.target_email} in {group_label}.", user.id
            except PolarisConflict:
                user = self.polaris.find_user_by_email(req.target_email)  # created meanwhile (an earlier attempt)
                if user is None:
                    raise
            except PolarisUnavailable as e:
                # The create may have landed even though the answer was lost: look now (and again, once its
                # time budget is over, before any new POST).
                user = self.polaris.find_user_by_email(req.target_email)
                if user is None:
                    if not e.outcome_unknown:  # refused before it was processed (429): nothing in flight
                        self._set(req.id, write_started_at=None)
                    raise
        if req.group_id in user.group_ids:
            return f"{req.target_email} is a member of {group_label}.", user.id
        self.polaris.add_members(req.group_id, [user.id])
        return f"Added {req.target_email} to {group_label}; their other groups are unchanged.", user.id

    def _write_settled_at(self, req: AccessRequest) -> dt.datetime | None:
        """When a write this request sent, with its answer lost, has either landed or never will (its start +
        the Polaris read timeout + :data:`WRITE_SETTLE_MARGIN`); ``None`` when no such write is in doubt."""
        if req.write_started_at is None or req.write_answered_at is not None:
            return None
        return req.write_started_at + dt.timedelta(seconds=self.polaris.read_timeout + WRITE_SETTLE_MARGIN)

    def _apply_reset(self, req: AccessRequest) -> tuple[str, str]:
        """A password reset: done when THIS request's PUT is proven to have landed, never because
        ``UPDATE_PASSWORD`` is merely present (every new account has it pending).

        ``write_started_at`` is committed just before the PUT is sent (after its fresh GET), with whether the
        action was already pending (``write_had_update_password``); ``write_answered_at`` when the PUT got its
        200. A resumed apply with a PUT started and not answered (and its time budget over, see :meth:`apply`)
        decides from Polaris: the action absent before and present now, or a ``USER_PASSWORD_RESET`` event of
        Polaris's own audit events since the PUT, proves it landed; otherwise the request fails saying the email
        may not have been sent (Retry sends it again). Raises :class:`PolarisError`."""
        sent = f"Polaris will email {req.target_email} a link to set a new password."
        user = self.polaris.find_user_by_email(req.target_email)
        if user is None:
            raise PolarisNotFound(404, "ObjectNotFound", f"no Polaris user {req.target_email}")
        if req.write_started_at is not None:
            if req.write_answered_at is not None:  # the PUT got its 200; the apply stopped before recording it
                return sent, user.id
            if self._reset_landed(req, user.id):
                self._set(req.id, write_answered_at=self.clock())
                self.audit.record("bot", "apply.write_confirmed", request_id=req.id, target=req.target_email,
                                  detail="the password-reset PUT whose answer was lost had landed")
                return sent, user.id
            raise _NotConfirmed(RESET_NOT_CONFIRMED)

        def before_put(current) -> None:
            self._set(req.id, write_started_at=self.clock(), write_answered_at=None,
                      write_had_update_password="UPDATE_PASSWORD" in current.actions)

        try:
            self.polaris.request_password_reset(user.id, before_put=before_put)
        except PolarisError as e:
            if not getattr(e, "outcome_unknown", False):  # not sent, or answered with a refusal: nothing landed
                self._set(req.id, write_started_at=None, write_had_update_password=None)
            raise
        self._set(req.id, write_answered_at=self.clock())
        return sent, user.id

    def _reset_landed(self, req: AccessRequest, user_id: str) -> bool:
        """Whether the reset PUT this request sent (answer lost) landed, from what Polaris says now."""
        current = self.polaris.get_user(user_id)
        if req.write_had_update_password is False and "UPDATE_PASSWORD" in current.actions:
            return True  # absent in the GET before the PUT, present now
        since = req.write_started_at - RESET_EVENT_SKEW  # allow for clock skew between us and Polaris
        # ...but never so far back that an earlier reset of the same user (answered before this one started)
        # would count as this one's (attack review): its event lies before that one's answer plus the skew.
        with self.db.session() as s:
            earlier = s.scalar(select(func.max(AccessRequest.write_answered_at)).where(
                AccessRequest.kind == RESET_PASSWORD, AccessRequest.id != req.id,
                func.lower(AccessRequest.target_email) == req.target_email.lower(),
                AccessRequest.write_answered_at <= req.write_started_at))
        if earlier is not None:
            since = max(since, earlier + RESET_EVENT_SKEW)
        try:
            events = self.polaris.list_audit_events(type="USER_PASSWORD_RESET", user=user_id, since=since)
        except (PolarisAuthError, PolarisNotFound) as e:  # no AccessAuditLogs on the key: cannot prove it
            log.warning("Polaris audit events unreadable (%s); reset of request %s not confirmed", e.status, req.id)
            return False
        return any(e.type == "USER_PASSWORD_RESET" and e.concerns(user_id) for e in events)
