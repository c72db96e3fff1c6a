"""Asking for a change to a group itself (issue 11): ``create-group``, ``edit-group``, ``delete-group``.

- Only ADMINS ask (as for ``offboard``); another admin decides, never the requester
  (:meth:`bot.access.approvers.Approvers.approver_ids`). A group that grants, or would grant, a privileged
  permission (:mod:`bot.privilege`) needs two approvals by Organization Admin members, checked at every click
  and again before it is applied.
- ``create-group "<name>" <permission> [<permission> ...] [in <project> ...]``: permission names as in
  ``GET /v1/permissions`` (any case); project-scoped ones apply to every project (``projects/*``) or to the
  projects named after ``in`` (names from ``GET /v1/projects``, or IDs). Nothing after the name: the form.
- ``edit-group <name>``: the form, filled in (``bot.access.group_form``); ``delete-group <name> [reason]``.
- Predefined (``readOnly``) groups are refused at once, without a card. A new name that a group already has
  is refused here and again when applied (:mod:`bot.access.group_side`).

The change is stored in the request's ``plan`` (JSON: ``name``, ``permissions`` / ``before`` + ``after`` /
``members``, and ``labels``: resource -> project name, for the card). ``target_email`` is ``group:<name>``
(lower-cased; the audit target) and one open request per group name holds (``open_key``). Refusals are
:class:`bot.commands.UsageError`.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import shlex
import uuid

from sqlalchemy.exc import IntegrityError

from .. import privilege, views
from ..commands import GROUP_MAX, UsageError, check_reason, clean, is_quoted
from ..models import CREATE_GROUP, DELETE_GROUP, EDIT_GROUP, GROUP_CHANGES, PENDING, AccessRequest
from ..polaris import Group, Permission, normalize_group_name
from ..views.groups import ALL_PROJECTS, as_dicts, grants
from .asking import card_reply
from .approvers import Approvers
from .context import Context
from .notifications import Notifications
from .queries import Queries
from .reminders import first_nudges
from .reply import Reply
from .store import RequestStore

CREATE_USAGE = (
    'Usage: `/polaris create-group "<name>" <permission> [<permission> ...] [in <project> ...]`, e.g. '
    '`/polaris create-group "Report Readers" AccessReports ViewTables in analytics`; `/polaris permissions` '
    "lists the permissions. `/polaris create-group` alone opens a form."
)
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def target_of(name: str) -> str:
    """The ``target_email`` (and open key) of a change to the group called ``name``: ``group:<name>``."""
    return f"group:{normalize_group_name(name)}"


class GroupChanges:
    """Saves group change requests and posts their cards; ``ctx`` gives the clients."""

    def __init__(
        self, ctx: Context, store: RequestStore, queries: Queries, approvers: Approvers, notifications: Notifications
    ):
        self.ctx, self.store, self.queries, self.approvers, self.notifications = (
            ctx,
            store,
            queries,
            approvers,
            notifications,
        )

    # ------------------------------------------------------------------------------- checks
    def check_admin(self, user_id: str) -> None:
        """Only ADMINS change groups; an active full member with an email. Raises :class:`UsageError`."""
        if user_id not in self.ctx.settings.admins:
            raise UsageError("Only admins can create, change or delete Polaris groups; ask one of them.")
        self.queries.active_requester(user_id)

    def check_name_free(self, name: str, *, other_than: str | None = None) -> None:
        """No group (read from Polaris now) is called ``name`` (ignoring case), but ``other_than`` (an ID)."""
        wanted = normalize_group_name(name)
        for group in self.ctx.polaris.list_groups():
            if normalize_group_name(group.name) == wanted and group.id != other_than:
                raise UsageError(f"There is already a Polaris group called *{group.name}*.")

    @staticmethod
    def check_name(raw: str) -> str:
        """A group name as typed, cleaned: 1 to :data:`GROUP_MAX` characters. Raises :class:`UsageError`."""
        name = " ".join(clean(raw, limit=None).split())
        if not name:
            raise UsageError("The group needs a name.")
        if len(name) > GROUP_MAX:
            raise UsageError(f"A group name can be at most {GROUP_MAX} characters (this one has {len(name)}).")
        return name

    def editable(self, name: str) -> Group:
        """The group called ``name``, read from Polaris now, when it may be changed: a predefined
        (``readOnly``) group, or one with a change already open (an edit, a delete), is refused at once, before
        any form is filled in. Raises :class:`UsageError`."""
        group = self.ctx.polaris.get_group(self.queries.resolve_group(name).id)
        if group.read_only:
            raise UsageError(
                f"*{group.name}* is a predefined Polaris group (read-only): it cannot be changed or "
                "deleted. Create a custom group instead (`/polaris create-group`)."
            )
        self._check_none_open(target_of(group.name), group.id)
        return group

    def _check_none_open(self, target: str, group_id: str | None) -> None:
        """Raise :class:`UsageError` naming an open group change of ``target`` (``group:<name>``) or ``group_id``."""
        for kind in GROUP_CHANGES:
            dup = self.store.open_duplicate(kind, target, group_id if kind != CREATE_GROUP else None)
            if dup is not None:
                raise UsageError(
                    f"There is already an open request for {views.kind_phrase(dup)} (request `{dup.id[:8]}`)."
                )

    def permissions(
        self, names: list[str], projects: list[str] | None, listed: list[Permission] | None = None
    ) -> list[Permission]:
        """The permissions called ``names`` (from ``listed``, else ``GET /v1/permissions`` now; any case),
        project-scoped ones on every project (``projects`` ``None``) or on the given project IDs. Raises
        :class:`UsageError` for an unknown name (with the nearest ones) or projects given with no
        project-scoped permission."""
        if listed is None:
            listed = self.ctx.polaris.list_permissions()
        catalogue = {p.name.lower(): p for p in listed}
        chosen: list[Permission] = []
        for raw in (part for name in names for part in name.split(",") if part.strip()):  # "A, B" is A and B
            known = catalogue.get(raw.strip().lower())
            if known is None:
                near = difflib.get_close_matches(raw.lower(), list(catalogue), n=3, cutoff=0.5)
                hint = (" Did you mean " + " or ".join(f"`{catalogue[n].name}`" for n in near) + "?") if near else ""
                raise UsageError(
                    f"There is no Polaris permission `{raw.replace('`', chr(39))[:80]}`.{hint} `/polaris permissions` "
                    "lists them."
                )
            if any(p.name == known.name for p in chosen):
                continue
            if not known.resources:
                chosen.append(Permission(known.name))
            else:
                scope = ("projects/*",) if projects is None else tuple(f"projects/{p}" for p in projects)
                chosen.append(Permission(known.name, scope))
        if not chosen:
            raise UsageError("Choose at least one permission: a group without any grants nothing.")
        if projects and not any(p.resources for p in chosen):
            raise UsageError("Projects apply to project-scoped permissions only; none of these is one.")
        return chosen

    def project_ids(self, typed: list[str]) -> list[str]:
        """Project names (or IDs) as typed -> their IDs (``GET /v1/projects``). Raises :class:`UsageError`."""
        ids = []
        for raw in typed:
            uid = self.ctx.projects.by_name(raw)
            if uid is None:
                known = ", ".join(sorted(self.ctx.projects.names().values())) or "none"
                raise UsageError(f"There is no Polaris project `{raw.replace('`', chr(39))[:80]}` (projects: {known}).")
            if uid not in ids:
                ids.append(uid)
        return ids

    # ------------------------------------------------------------------------------- create
    def create_command(self, user_id: str, rest: str) -> Reply:
        """``create-group "<name>" <permission> ... [in <project> ...]``."""
        self.check_admin(user_id)
        try:
            words = shlex.split(rest.translate(_CURLY))
        except ValueError:
            raise UsageError("A quote is not closed. " + CREATE_USAGE) from None
        if len(words) < 2:
            raise UsageError(CREATE_USAGE)
        lowered = [w.lower() for w in words]
        cut = next((i for i in range(1, len(words)) if lowered[i] == "in"), len(words))  # words[0] is the name
        projects = words[cut + 1 :] if cut < len(words) else None
        if projects == []:
            raise UsageError("Which projects? Name them after `in`. " + CREATE_USAGE)
        if cut == 1:
            raise UsageError("Name at least one permission after the group's name. " + CREATE_USAGE)
        ids = self.project_ids(projects) if projects else None
        listed = self.ctx.polaris.list_permissions()
        try:
            permissions = self.permissions(words[1:cut], ids, listed)
        except UsageError as e:
            first = words[1]
            if (
                cut > 2 and "," not in first and first.lower() not in {p.name.lower() for p in listed}
            ):  # `Sales Readers`
                raise UsageError(
                    f"{e} If `{first.replace('`', chr(39))[:80]}` is part of the group's name, put the name in "
                    f'quotes: `/polaris create-group "{words[0][:80]} {first[:80]}" …`.'
                ) from None
            raise
        return self.ask_create(user_id, words[0], permissions)

    def ask_create(self, user_id: str, name: str, permissions: list[Permission]) -> Reply:
        """A request to create the group ``name`` with ``permissions`` (checked: the name is free now)."""
        self.check_admin(user_id)
        name = self.check_name(name)
        self.check_name_free(name)
        plan = {"name": name, "permissions": as_dicts(permissions), "labels": self._labels(permissions)}
        probe = Group(id="", name=name, permissions=tuple(permissions))
        req = self._new(CREATE_GROUP, user_id, name, None, plan, probe, reason="")
        return self._save_and_post(req, user_id, f"create group {name}")

    # ------------------------------------------------------------------------------- edit
    def ask_edit(self, user_id: str, group_id: str, new_name: str, permissions: list[Permission]) -> Reply:
        """A request to change the group ``group_id`` to ``new_name`` and ``permissions`` (only what differs
        from the group now is planned). Raises :class:`UsageError` when nothing would change."""
        self.check_admin(user_id)
        group = self.ctx.polaris.get_group(group_id)
        if group.read_only:
            raise UsageError(f"*{group.name}* is a predefined Polaris group (read-only): it cannot be changed.")
        new_name = self.check_name(new_name)
        renamed = new_name if new_name != group.name else None
        if renamed:
            self.check_name_free(new_name, other_than=group.id)
            pending = self.store.open_duplicate(CREATE_GROUP, target_of(new_name), None)
            if pending is not None:
                raise UsageError(
                    f"A request to create a group called *{new_name}* is open (request "
                    f"`{pending.id[:8]}`); choose another name, or wait until it is decided."
                )
        before = as_dicts(Permission(p.name, p.resources) for p in group.permissions)
        after = as_dicts(permissions)
        changed = grants(group.permissions) != grants(permissions)  # resources compared as sets
        if not renamed and not changed:
            raise UsageError(f"That is what *{group.name}* has already; nothing to change.")
        plan = {
            "name": group.name,
            "new_name": renamed,
            "permissions_changed": changed,
            "before": before,
            "after": after,
            "labels": self._labels([*group.permissions, *permissions]),
        }
        if renamed:  # the policy is keyed by name: a rename may move the group under another rule
            now_rule, then_rule = self.approvers.rule_for(group.name), self.approvers.rule_for(new_name)
            if now_rule != then_rule:
                plan["policy"] = {"before": now_rule.describe(), "after": then_rule.describe()}
        probe = Group(id=group.id, name=group.name, permissions=group.permissions + tuple(permissions))
        req = self._new(EDIT_GROUP, user_id, group.name, group.id, plan, probe, reason="")
        return self._save_and_post(req, user_id, f"edit group {group.name}")

    # ------------------------------------------------------------------------------- delete
    def delete_command(self, user_id: str, rest: str) -> Reply:
        """``delete-group <name> [reason]``: the card says how many members lose it."""
        self.check_admin(user_id)
        found, reason = self.queries.group_and_rest(rest)
        if reason and not is_quoted(rest):
            self._check_not_a_typo(found, rest)
        reason = check_reason(clean(reason, limit=None))
        group = self.editable(found.name)
        members = group.user_count
        if members is None:
            members = self.ctx.polaris.list_members(group.id, top=1).count
        perms = [Permission(p.name, p.resources) for p in group.permissions]
        plan = {"name": group.name, "members": members, "permissions": as_dicts(perms), "labels": self._labels(perms)}
        req = self._new(DELETE_GROUP, user_id, group.name, group.id, plan, group, reason=reason)
        return self._save_and_post(req, user_id, f"delete group {group.name} ({members} members)")

    def _check_not_a_typo(self, found: Group, rest: str) -> None:
        """A destructive command takes a group named exactly: when the unquoted words beyond ``found``'s name
        read like another group's name (``delete-group data analysts`` with groups "Data" and "Data Analyst"),
        refuse, naming the nearest names and how to quote. Raises :class:`UsageError`."""
        words, taken = rest.split(), len(found.name.split())
        others = {g.name.lower(): g.name for g in self.ctx.catalog.all() if g.id != found.id}
        near: list[str] = []
        for end in range(taken + 1, len(words) + 1):
            typed = normalize_group_name(" ".join(words[:end]))
            near += [others[n] for n in difflib.get_close_matches(typed, list(others), n=3, cutoff=0.8)]
        if near:
            names = " or ".join(f"*{n}*" for n in dict.fromkeys(near))  # escaped once, by guarded
            raise UsageError(
                f"Did you mean {names}? Nothing was asked: to delete *{found.name}*, quote its name "
                f'(`/polaris delete-group "{found.name}" <reason>`).'
            )

    # ------------------------------------------------------------------------------- saving
    def _labels(self, permissions) -> dict[str, str]:
        """``{resource: words}`` for the card (project names read now)."""
        return {r: self.ctx.projects.label(r) for p in permissions for r in p.resources}

    def _new(self, kind, user_id, name, group_id, plan, probe: Group, *, reason: str) -> AccessRequest:
        now = self.ctx.clock()
        who = self.ctx.slack.identity(user_id, max_age=60)
        target = target_of(name)
        req = AccessRequest(
            id=str(uuid.uuid4()),
            kind=kind,
            state=PENDING,
            requester_id=user_id,
            requester_email=(who.email or "").lower() or None,
            target_email=target,
            target_slack_id=None,
            target_first_name="",
            target_last_name="",
            group_id=group_id,
            group_name=name,
            reason=reason,
            approvals_required=privilege.approvals_needed(1, probe),
            open_key=AccessRequest.make_open_key(target, group_id, kind),
            created_at=now,
            updated_at=now,
            post_attempts=0,
            card_stale=False,
            attempts=0,
            plan=json.dumps(plan),
        )
        rule = self.approvers.rule_of(req)
        req.expires_at = now + dt.timedelta(seconds=rule.ttl)
        for column, value in first_nudges(rule, now).items():
            setattr(req, column, value)
        return req

    def _save_and_post(self, req: AccessRequest, actor: str, detail: str) -> Reply:
        """Insert ``req`` with its ``request.created`` audit row, post its card, answer the requester. Refused
        (:class:`UsageError`) when the requester has MAX_OPEN_REQUESTS open requests already, or when fewer
        people than it needs may decide it (ADMINS but the requester)."""
        n = self.store.count_open(actor)
        if n >= self.ctx.settings.max_open_requests:
            raise UsageError(f"You already have {n} open requests; wait for a decision or see `/polaris status`.")
        deciders = self.approvers.approver_ids(req)
        if len(deciders) < req.approvals_required:
            need = "two other admins" if req.approvals_required > 1 else "another admin"
            raise UsageError(
                f"Nobody could approve this: a group change is decided by {need} (ADMINS, never the requester), "
                f"and {'only ' + str(len(deciders)) if deciders else 'no one else'} is configured. Nothing was asked."
            )
        self._check_none_open(req.target_email, req.group_id)
        try:
            with self.ctx.db.session() as s:
                self.store.insert(req, session=s)
                self.ctx.audit.record(
                    actor, "request.created", request_id=req.id, target=req.target_email, session=s, detail=detail
                )
        except IntegrityError:
            raise UsageError("There is already an open request for that group; see `/polaris pending`.") from None
        return card_reply(self.notifications, req, deciders="admins")


def all_projects(scope: str) -> bool:
    """Whether a form's scope choice means every project."""
    return scope in ("", ALL_PROJECTS)
