"""The group form (``/polaris create-group`` with nothing after it, ``/polaris edit-group <name>``): open a
loading modal at once (the ``trigger_id`` lives 3 seconds), then admit the person, check they are an admin and
fill in the permissions (``GET /v1/permissions``) and projects (``GET /v1/projects``), and for an edit the
group as Polaris has it now; a refusal or a failure is shown in the modal.

Its ``view_submission``: :meth:`GroupForm.errors` runs before the ack (no Polaris call: only the group list,
permissions and projects cached when the form was filled in): a bad field keeps the form open with
``response_action: errors``. :meth:`GroupForm.submit` then runs on a work lane, checks it all again against
Polaris now and asks for the change (:mod:`bot.access.group_changes`); the answer goes to the person by DM.

The form has one scope for all project-scoped permissions. In an edit, a permission the group has keeps its
own ``resources`` while the scope and projects are left as filled in (a group whose permissions have different
scopes is not widened or narrowed by a rename or an added permission), and a permission the form does not
offer (``GET /v1/permissions`` does not list it, or past the first 100) is kept as it is.
"""

from __future__ import annotations

from .. import views
from ..commands import GROUP_MAX, UsageError, clean
from ..polaris import Group, Permission, normalize_group_name
from ..views.groups import (
    CHOSEN_PROJECTS,
    GROUP_NAME_BLOCK,
    GROUP_PERMS_BLOCK,
    GROUP_PROJECTS_BLOCK,
    chosen_projects,
    grants,
    group_modal,
    group_modal_message,
    offered,
)
from .admission import Admission
from .context import Context
from .errors import form_problem, guarded
from .group_changes import GroupChanges
from .reply import Reply


class GroupForm:
    """The group form's Slack side; ``changes`` asks for what it submits."""

    def __init__(self, ctx: Context, admission: Admission, changes: GroupChanges):
        self.ctx, self.admission, self.changes = ctx, admission, changes

    def open(self, trigger_id: str) -> str | None:
        """Open the loading modal (``views.open``); its view ID, or ``None`` when Slack did not open it."""
        return self.ctx.slack.open_view(trigger_id, group_modal_message(":hourglass_flowing_sand: Loading…"))

    def fill(self, user_id: str, view_id: str, name: str = "") -> None:
        """Admit ``user_id`` (audited, rate limited), check they are an admin, and show the form (filled in
        with the group called ``name`` when given), or the refusal or failure, in the modal."""
        try:
            why = self.admission.form_refusal(user_id)
            if why:
                raise UsageError(why)
            self.changes.check_admin(user_id)
            group = self.changes.editable(name) if name else None
            permissions = self.ctx.permissions.all()
            projects = self.ctx.projects.names()
            self.ctx.catalog.invalidate()  # fresh for the submission's checks, which run before the ack
            self.ctx.catalog.all()
        except UsageError as e:
            self.ctx.slack.update_view(view_id, group_modal_message(f":no_entry: {views.esc(str(e))}"))
            return
        except Exception as e:  # Polaris down: said in the form
            self.ctx.slack.update_view(view_id, group_modal_message(f":warning: {form_problem(e)}"))
            return
        view = group_modal(permissions, projects, group=group, chosen=chosen_projects(group))
        self.ctx.slack.update_view(view_id, view)

    def errors(self, form: dict) -> dict[str, str]:
        """The fields to fix, by block ID (empty: fine). ``form``: ``name``, ``permissions`` (names),
        ``scope`` (``all`` or ``chosen``), ``projects`` (IDs), ``group_id`` (the edited group, or "").
        Checked against what is cached (never a Polaris call before the ack): a name another group has, an
        unknown project, projects with no project-scoped permission, an edit that changes nothing. Polaris is
        asked again when it is submitted and when it is applied."""
        out: dict[str, str] = {}
        name = " ".join(clean(form.get("name") or "", limit=None).split())
        catalog = self.ctx.catalog
        if not name:
            out[GROUP_NAME_BLOCK] = "The group needs a name."
        elif len(name) > GROUP_MAX:
            out[GROUP_NAME_BLOCK] = f"At most {GROUP_MAX} characters (this has {len(name)})."
        else:
            taken = catalog.by_name(name) if catalog.fresh() else None
            if taken is not None and taken.id != form.get("group_id"):
                out[GROUP_NAME_BLOCK] = f"There is already a group called {taken.name}."
        if not form.get("permissions"):
            out[GROUP_PERMS_BLOCK] = "Choose at least one permission."
        out.update(_scope_errors(form, self.ctx.projects.cached()))
        listed = self.ctx.permissions.cached()
        if out or listed is None:
            return out
        group = catalog.by_id(form["group_id"]) if form.get("group_id") and catalog.fresh() else None
        try:
            planned = self.planned(form, listed, group)
        except UsageError as e:
            return {_block_of(e): str(e)}
        if group is not None and name == group.name and grants(planned) == grants(group.permissions):
            out[GROUP_PERMS_BLOCK] = f"That is what {group.name} has already: change something, or cancel."
        return out

    def planned(self, form: dict, listed: list[Permission], group: Group | None) -> list[Permission]:
        """The permissions the form asks for (``listed``: ``GET /v1/permissions``), for an edit of ``group``
        with the permissions it keeps as they are (see the module). Raises :class:`UsageError`."""
        projects = list(form.get("projects") or []) if form.get("scope") == CHOSEN_PROJECTS else None
        chosen = self.changes.permissions(list(form.get("permissions") or []), projects, listed)
        return chosen if group is None else _keeping_own_scopes(group, chosen, projects, listed)

    def submit(self, user_id: str, form: dict) -> Reply:
        """Ask for the change the form describes (a new group, or ``group_id`` changed); the answer, or the
        refusal, as a :class:`Reply` (never raises)."""

        def work() -> Reply:
            what = f"group form {normalize_group_name(form.get('name') or '')[:64]}"
            why = self.admission.admit(user_id, what, check_identity=False)
            if why:
                return Reply(f":no_entry: {why}")
            problems = _scope_errors(form, self.ctx.projects.names())
            if problems:
                raise UsageError(next(iter(problems.values())))
            group = self._edited(form.get("group_id") or "")
            permissions = self.planned(form, self.ctx.permissions.all(), group)
            if group is not None:
                return self.changes.ask_edit(user_id, group.id, form.get("name") or "", permissions)
            return self.changes.ask_create(user_id, form.get("name") or "", permissions)

        return guarded(self.ctx.audit, user_id, "group form", work)

    def _edited(self, group_id: str) -> Group | None:
        """The group an edit form is for, read from Polaris now (``None``: a new group). Its ID (the form's
        ``private_metadata``) must be one ``GET /v1/groups`` lists: anything else is refused before it is put
        into a Polaris path. Raises :class:`UsageError`."""
        if not group_id:
            return None
        if not any(g.id == group_id for g in self.ctx.polaris.list_groups()):
            raise UsageError("That group is no longer in Polaris; nothing was asked. `/polaris groups` lists them.")
        return self.ctx.polaris.get_group(group_id)

    def submit_and_tell(self, user_id: str, form: dict) -> Reply:
        """:meth:`submit`, its answer sent to ``user_id`` by DM (a modal has no response_url)."""
        reply = self.submit(user_id, form)
        self.ctx.slack.dm(user_id, reply.text, reply.blocks)
        return reply


def _scope_errors(form: dict, projects: dict[str, str] | None) -> dict[str, str]:
    """The scope and projects fields' problems (``projects``: ID -> name, ``None`` when not known yet):
    projects chosen while the scope says all projects (they would be dropped), none chosen while it says the
    chosen ones, or one Polaris does not list (a forged submission)."""
    chosen = list(form.get("projects") or [])
    if form.get("scope") == CHOSEN_PROJECTS:
        if not chosen:
            return {GROUP_PROJECTS_BLOCK: "Choose the projects, or scope it to all projects."}
    elif chosen:
        return {
            GROUP_PROJECTS_BLOCK: 'Projects are chosen but the scope is "All projects": choose "The projects '
            'chosen below", or clear the projects.'
        }
    unknown = [p for p in chosen if projects is not None and p not in projects]
    if unknown:
        return {GROUP_PROJECTS_BLOCK: f"There is no Polaris project {unknown[0][:80]}; choose from the list."}
    return {}


def _block_of(error: UsageError) -> str:
    """The form field a refusal of :meth:`GroupChanges.permissions` is about."""
    return GROUP_PROJECTS_BLOCK if "project" in str(error).lower() else GROUP_PERMS_BLOCK


def _keeping_own_scopes(
    group: Group, chosen: list[Permission], projects: list[str] | None, listed: list[Permission]
) -> list[Permission]:
    """``chosen`` (the form's permissions on its scope) for an edit of ``group``: a permission the group has
    keeps its own ``resources`` while the scope is as the form was filled in (``projects`` as
    :func:`chosen_projects` gives, ``None``/``[]``: all projects), and one the form does not offer is kept."""
    org, scoped = offered(listed)
    shown = {p.name.lower() for p in [*org, *scoped]}
    untouched = sorted(projects or []) == sorted(chosen_projects(group))
    own: dict[str, list[Permission]] = {}
    for p in group.permissions:
        own.setdefault(p.name.lower(), []).append(Permission(p.name, p.resources))
    out: list[Permission] = []
    for p in chosen:
        mine = own.get(p.name.lower())
        out.extend(mine if mine and (untouched or not p.resources) else [p])
    return out + [
        q for p in group.permissions if p.name.lower() not in shown for q in [Permission(p.name, p.resources)]
    ]
