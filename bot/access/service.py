"""The facade of the access core: :class:`AccessService`, what the Slack handlers, the worker and the CLI call.

It builds the units of :mod:`bot.access` on one :class:`bot.access.context.Context` and delegates to them; it
holds no logic of its own beyond the work lanes. It reaches Slack only through :class:`bot.slack.SlackGateway`
and Polaris only through :class:`bot.polaris.PolarisClient`, keeps all state in the database (any number of
processes may share one PostgreSQL), and audits everything. Handlers use these methods only, never the clients.

Lifecycle of an access request (``access_requests.state``)::

    pending --approve (enough approvals)--> approved --apply ok--> applied
       |  \\--deny--> denied                    \\--apply fails for good--> failed --Retry--> approved
       \\--TTL passes--> expired

Taking access away (``leave``, ``remove``, ``offboard``) follows the same lifecycle (a leave starts approved);
``cancel`` withdraws a pending request (``pending --cancel--> cancelled``), and an offboarding, once applied,
closes the person's other open requests the same way.

The units, each depending only on those above it: ``context``, ``reply``, ``errors``, ``store``,
``lease_store``, ``authority`` (pure), ``verdicts`` (pure), ``approvers``, ``admission``, ``mentions``,
``threads``, ``notifications``, ``queries``, ``audit_view``, ``decisions``, ``reminders``, ``polaris_side``, ``removal_side``,
``execution`` (with ``group_side``), ``requests``, ``removals``, ``group_info``, ``group_changes``, ``schedule``,
``form``, ``group_form``, ``user_updates`` (with ``user_side``), ``decision_forms``, ``dispatch``.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

from ..audit import AuditLog
from ..commands import Command, Target, check_reason, clean
from ..config import Settings
from ..db import Database
from ..lanes import POLARIS, Lanes, lane_for_command
from ..models import AccessRequest, utcnow
from ..polaris import Group, GroupCatalog, PolarisClient
from ..policy import Policy, Rule, load_policy
from ..slack import SlackGateway
from .admission import Admission
from .approvers import Approvers
from .audit_view import AuditView
from .context import Context, shared as _shared, worker_name as _worker_name
from .decision_forms import DecisionForms
from .decisions import Decisions
from .dispatch import Dispatch
from .errors import guarded
from .execution import Execution
from .form import RequestForm
from .group_changes import GroupChanges
from .group_form import GroupForm
from .lease_clicks import LeaseClicks
from .leases import Leases
from .mentions import Mentions
from .notifications import Notifications
from .queries import Queries
from .reminders import Reminders
from .removals import Removals
from .reply import Reply
from .requests import Submission
from .schedule import Schedule
from .store import RequestStore

MALFORMED_BUTTON = "That button is not a valid access request."


class AccessService:
    """The bot's core. Thread-safe: every call opens its own database sessions.

    ``settings``: :class:`bot.config.Settings`; ``db``: :class:`bot.db.Database` (migrated);
    ``polaris``: client; ``slack``: gateway; ``audit``: audit log; ``clock``: returns aware UTC now.
    """

    settings = _shared("settings", "The settings (replaceable).")
    policy = _shared("policy", "The approval policy (replaceable).")
    clock = _shared("clock", "Returns aware UTC now (replaceable: tests move it).")
    wake = _shared("wake", "Set by the worker: run a pass soon.")
    db = property(lambda self: self.ctx.db)
    polaris = property(lambda self: self.ctx.polaris)
    slack = property(lambda self: self.ctx.slack)
    audit = property(lambda self: self.ctx.audit)
    catalog = property(lambda self: self.ctx.catalog)
    claims = property(lambda self: self.ctx.claims)
    deliveries = property(lambda self: self.ctx.deliveries)

    def __init__(
        self,
        settings: Settings,
        db: Database,
        polaris: PolarisClient,
        slack: SlackGateway,
        audit: AuditLog,
        *,
        catalog: GroupCatalog | None = None,
        policy: Policy | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        background_threads: int = 2,
        max_queued: int = 2000,
    ):
        policy = policy or load_policy(
            settings.policy_file, ttl=settings.request_ttl, manager_field=settings.manager_field
        )
        catalog = catalog or GroupCatalog(polaris, ttl=settings.group_cache_ttl)
        self.ctx = ctx = Context(settings, db, polaris, slack, audit, catalog, policy, clock)
        self.worker_name = _worker_name()
        self.store = RequestStore(db)
        self.approvers = Approvers(ctx)
        self.admission = Admission(ctx)
        self.mentions = Mentions(ctx, self.admission)
        self.notifications = Notifications(ctx, self.store, self.approvers)
        self.queries = Queries(ctx, self.store, self.approvers)
        self.decisions = Decisions(ctx, self.store, self.approvers, self.notifications)
        self.leases = Leases(ctx, self.store, self.notifications)
        self.execution = Execution(ctx, self.store, self.approvers, self.notifications, self.worker_name, self.leases)
        self.requests = Submission(ctx, self.store, self.queries, self.approvers, self.notifications, self.decisions)
        self.reminders = Reminders(ctx, self.store, self.approvers, self.notifications)
        self.schedule = Schedule(
            ctx, self.store, self.decisions, self.notifications, self.execution, self.leases, self.reminders
        )
        self.form = RequestForm(ctx, self.admission)
        self.decision_forms = DecisionForms(ctx, self.store, self.approvers, self.decisions, self.notifications)
        self.lease_clicks = LeaseClicks(ctx, self.leases, self.requests)
        self.removals = Removals(ctx, self.store, self.queries, self.approvers, self.notifications, self.execution)
        self.audit_view = AuditView(ctx, self.queries)
        self.group_changes = GroupChanges(ctx, self.store, self.queries, self.approvers, self.notifications)
        self.group_form = GroupForm(ctx, self.admission, self.group_changes)
        self.dispatch = Dispatch(
            self.admission, self.queries, self.requests, self.removals, self.audit_view, self.group_changes
        )
        # Work handed off by listeners after ack(): bounded lanes apart from Bolt's listener threads (which
        # run the acks), one for work that waits on Polaris and one for work that does not, so a slow Polaris
        # never holds up `help` (bot/lanes.py). Few threads on purpose: they share the GIL with the acks.
        self.lanes = Lanes(threads=background_threads, max_queued=max_queued)

    # =============================================================================== work lanes
    @property
    def max_queued(self) -> int:
        """The queue limit of each work lane (tasks accepted and not finished); settable."""
        return self.lanes.lane(POLARIS).max_queued

    @max_queued.setter
    def max_queued(self, value: int) -> None:
        self.lanes.set_max_queued(value)

    def background(
        self, fn: Callable[[], object], *, on_busy: Callable[[], object] | None = None, lane: str = POLARIS
    ) -> bool:
        """Run ``fn`` on the work lane ``lane`` (:data:`bot.lanes.LOCAL` for work that never waits on Polaris,
        :data:`bot.lanes.POLARIS`, the default, for work that may) after the listener has acked. Exceptions
        are logged, never lost. When the lane's ``max_queued`` tasks already wait, ``on_busy`` runs instead
        and False is returned."""
        return self.lanes.submit(lane, fn, on_busy)

    def command_lane(self, text: str | None) -> str:
        """The work lane for the ``/polaris`` command ``text`` (:func:`bot.lanes.lane_for_command`)."""
        return lane_for_command(text, groups_cached=self.catalog.fresh())

    def drain(self) -> None:
        """Wait for the background work of every lane to finish, however long it takes (shutdown, tests)."""
        self.lanes.drain()

    # =============================================================================== commands and the form
    def handle_command(self, user_id: str, text: str | None, *, channel_id: str | None = None) -> Reply:
        """Run one ``/polaris`` command for ``user_id`` and return the ephemeral answer. Never raises:
        bad input, Polaris and Slack failures become a clear message; unexpected errors are logged."""
        shown = clean(text, 200)
        return self.guarded(user_id, shown, lambda: self.dispatch.run(user_id, text, shown, channel_id))

    def guarded(self, user_id: str, shown: str, work: Callable[[], Reply]) -> Reply:
        """Run ``work`` turning every failure into a :class:`Reply` for the person (:mod:`bot.access.errors`)."""
        return guarded(self.audit, user_id, shown, work)

    def form_refusal(self, user_id: str) -> str | None:
        return self.admission.form_refusal(user_id)

    def open_request_form(self, trigger_id: str) -> str | None:
        return self.form.open(trigger_id)

    def request_form_not_opened(self, user_id: str) -> None:
        self.form.not_opened(user_id)

    def fill_request_form(self, user_id: str, view_id: str) -> None:
        self.form.fill(user_id, view_id)

    def show_form_error(self, view_id: str, escaped: str) -> None:
        self.form.show_error(view_id, escaped)

    def submit_form(self, user_id: str, group_id: str, reason: str, duration: int | None = None) -> Reply:
        """The request form's submission: like ``/polaris request`` with a group chosen by ID and ``duration``
        (seconds; ``None``: for good or the group's default)."""

        def work() -> Reply:
            # Admitted like a command: audited and rate limited (the identity is checked by request_join).
            why = self.admission.admit(user_id, f"request form {group_id[:64]}", check_identity=False)
            if why:
                return Reply(f":no_entry: {why}")
            text = check_reason(clean(reason, limit=None))  # refused with its length, never cut
            if self.catalog.by_id(group_id) is None:
                self.catalog.refresh()  # a group made in Polaris since the list was read
            return self.requests.request_join(user_id, "", text, group_id=group_id, duration=duration)

        return self.guarded(user_id, "request form", work)

    def submit_form_and_tell(self, user_id: str, group_id: str, reason: str, duration: int | None = None) -> Reply:
        """:meth:`submit_form`, its answer sent to ``user_id`` by DM (a modal has no response_url)."""
        reply = self.submit_form(user_id, group_id, reason, duration)
        self.slack.dm(user_id, reply.text, reply.blocks)
        return reply

    def open_group_form(self, trigger_id: str) -> str | None:
        """The group form's loading modal (:meth:`bot.access.group_form.GroupForm.open`)."""
        return self.group_form.open(trigger_id)

    def fill_group_form(self, user_id: str, view_id: str, name: str = "") -> None:
        """The group form filled in, or its refusal (:meth:`bot.access.group_form.GroupForm.fill`)."""
        self.group_form.fill(user_id, view_id, name)

    def group_form_errors(self, form: dict) -> dict[str, str]:
        """The group form's fields to fix, before the ack (:meth:`bot.access.group_form.GroupForm.errors`)."""
        return self.group_form.errors(form)

    def submit_group_form_and_tell(self, user_id: str, form: dict) -> Reply:
        """The group form's submission, answered by DM (:meth:`bot.access.group_form.GroupForm.submit`)."""
        return self.group_form.submit_and_tell(user_id, form)

    def open_user_form(self, user_id: str, text: str, trigger_id: str) -> Reply:
        """``/polaris update-user`` from Slack: the user form, or a sentence (:mod:`bot.access.user_updates`)."""
        return self.dispatch.user_updates.open_form(user_id, text, trigger_id)

    def user_form_errors(self, form: dict) -> dict[str, str]:
        """The user form's fields to fix, before the ack (no I/O)."""
        return self.dispatch.user_updates.errors(form)

    def submit_user_form_and_tell(self, user_id: str, form: dict) -> Reply:
        """The user form's submission: an ``update_user`` request, answered by DM."""
        return self.dispatch.user_updates.submit_and_tell(user_id, form)

    def refuse_malformed_button(self, user_id: str, action: str) -> str:
        """A button whose value is no request ID: audited (``decision.refused``); the answer for the clicker."""
        self.audit.record(user_id, "decision.refused", outcome="refused", detail=f"{action}: malformed button value")
        return MALFORMED_BUTTON

    def first_delivery(self, event_id: str) -> bool:
        return self.admission.first_delivery(event_id)

    def answer_mention(
        self, event_id: str, user_id: str, channel_id: str, *, direct: bool, thread_ts: str | None = None
    ) -> bool:
        """A mention of the bot, or a DM to it: a short answer pointing to ``/polaris help``
        (:mod:`bot.access.mentions`)."""
        return self.mentions.answer(event_id, user_id, channel_id, direct=direct, thread_ts=thread_ts)

    def home_view(self, user_id: str) -> dict:
        return self.queries.home_view(user_id)

    def publish_home(self, user_id: str) -> None:
        """Publish ``user_id``'s App Home tab (:meth:`home_view`)."""
        self.slack.publish_home(user_id, self.home_view(user_id))

    # =============================================================================== queries
    def cmd_whois(self, user_id: str, target: Target) -> Reply:
        return self.dispatch.paging.whois(user_id, Command("whois", target=target))

    def resolve_group(self, name: str) -> Group:
        return self.queries.resolve_group(name)

    def cmd_members(self, rest: str) -> Reply:
        return self.dispatch.paging.members(rest)

    def cmd_status(self, user_id: str) -> Reply:
        return self.queries.status(user_id)

    def cmd_pending(self, user_id: str) -> Reply:
        return self.queries.pending(user_id)

    def cmd_policy(self, user_id: str) -> Reply:
        return self.queries.policy(user_id)

    # =============================================================================== who decides
    def rule_for(self, group_name: str | None) -> Rule:
        return self.approvers.rule_for(group_name)

    def manager_of(self, user_id: str) -> str | None:
        return self.approvers.manager_of(user_id)

    def is_privileged(self, group: Group | None) -> bool:
        return self.approvers.is_privileged(group)

    def approver_ids(self, req: AccessRequest, memo: dict[str, list[str]] | None = None) -> set[str]:
        return self.approvers.approver_ids(req, memo)

    def authority(
        self, actor_id: str, req: AccessRequest, *, approving: bool = True, group: Group | None = None
    ) -> str | None:
        return self.approvers.authority(actor_id, req, approving=approving, group=group)

    # =============================================================================== requests
    def request_join(
        self, user_id: str, group_text: str, reason: str, *, group_id: str | None = None, duration: int | None = None
    ) -> Reply:
        return self.requests.request_join(user_id, group_text, reason, group_id=group_id, duration=duration)

    def request_invite(
        self, user_id: str, target: Target, group_text: str, reason: str, *, duration: int | None = None
    ) -> Reply:
        return self.requests.request_invite(user_id, target, group_text, reason, duration=duration)

    def request_reset(self, user_id: str, target: Target) -> Reply:
        return self.requests.request_reset(user_id, target)

    def cmd_leave(self, user_id: str, rest: str) -> Reply:
        return self.removals.leave(user_id, rest)

    def request_remove(self, user_id: str, target: Target, rest: str) -> Reply:
        return self.removals.remove(user_id, target, rest)

    def request_offboard(self, user_id: str, target: Target, reason: str) -> Reply:
        return self.removals.offboard(user_id, target, reason)

    def cmd_cancel(self, user_id: str, ref: str) -> Reply:
        return self.removals.cancel(user_id, ref)

    def cancel_request(self, request_id: str, actor_id: str) -> str:
        """The Cancel button (``status``, App Home): ``actor_id`` withdraws their pending request; the answer."""
        return self.removals.withdraw(request_id, actor_id)

    def slack_user_deactivated(self, slack_id: str, email_hint: str = "") -> AccessRequest | None:
        """A ``user_change`` event with ``deleted: true``: an offboarding card for the admins, when the person
        has an enabled Polaris account (:meth:`bot.access.removals.Removals.deactivated`)."""
        return self.removals.deactivated(slack_id, email_hint)

    def get(self, request_id: str) -> AccessRequest | None:
        return self.store.get(request_id)

    # =============================================================================== cards and DMs
    def post_card(self, request_id: str) -> bool:
        return self.notifications.post_card(request_id)

    def refresh_card(self, request_id: str, note: str | None = None) -> bool:
        return self.notifications.refresh_card(request_id, note)

    def notify_requester(self, req: AccessRequest) -> bool:
        return self.notifications.notify_requester(req)

    # =============================================================================== decisions
    def decide(
        self, request_id: str, actor_id: str, approve: bool, *, note: str = "", duration: int | None = None
    ) -> str | None:
        """A decision (:meth:`bot.access.decisions.Decisions.decide`): ``note`` a deny reason or approval
        comment, ``duration`` a shorter time granted (seconds)."""
        with self.audit.batch():  # the click's Polaris call and Slack rows in one transaction at its end
            return self.decisions.decide(request_id, actor_id, approve, note=note, duration=duration)

    def open_decision_form(
        self, trigger_id: str, request_id: str, actor_id: str, *, approve: bool
    ) -> tuple[str | None, str | None]:
        """The Deny form (``approve`` False) or the Approve form: (view ID, or a sentence for the clicker)."""
        return self.decision_forms.open(trigger_id, request_id, actor_id, approve=approve)

    def check_decision_form(self, view_id: str, request_id: str, actor_id: str, *, approve: bool) -> None:
        self.decision_forms.check(view_id, request_id, actor_id, approve=approve)

    def deny_reason_required(self, request_id: str) -> bool:
        return self.decision_forms.reason_required(request_id)

    def submit_decision_form(
        self, request_id: str, actor_id: str, *, approve: bool, note: str, duration: int | None = None
    ) -> str | None:
        """A Deny or Approve form's submission: the decision, its answer DMed to the clicker."""
        return self.decision_forms.submit(request_id, actor_id, approve=approve, note=note, duration=duration)

    def retry(self, request_id: str, actor_id: str) -> str | None:
        return self.decisions.retry(request_id, actor_id)

    def expire(self, request_id: str) -> bool:
        return self.decisions.expire(request_id)

    def auto_approve(self, request_id: str) -> None:
        self.decisions.auto_approve(request_id)

    # =============================================================================== time-bound access
    def extend_lease(self, lease_id: str, actor_id: str) -> Reply:
        """**Extend** on the DM before a lease ends: a new request for the same group and duration."""
        return self.guarded(actor_id, "extend", lambda: self.lease_clicks.extend(lease_id, actor_id))

    def end_lease(self, lease_id: str, actor_id: str) -> Reply:
        """**I'm done** on the DM before a lease ends: the access ends now."""
        return self.guarded(actor_id, "I'm done", lambda: self.lease_clicks.done(lease_id, actor_id))

    def revoke_lease(self, lease_id: str) -> bool:
        """End a lease whose time is up (the worker does this on its own; tests and tools call it)."""
        return self.leases.revoke(lease_id)

    # =============================================================================== worker
    def run_due(self, *, limit: int = 20, stop=None) -> int:
        return self.schedule.run_due(limit=limit, stop=stop)

    def apply(self, request_id: str) -> bool:
        return self.execution.apply(request_id)
